#!/bin/sh
# Helm post-renderer for the Enterprise Gateway 3.3 chart (docs/deploy.md). It reads the chart's
# rendered manifests on stdin and writes them back with, on EG's Deployment:
#   - EG_AUTH_TOKEN from the Secret enterprise-gateway-token (key "token");
#   - deploy/gateway/nodelay_config.py as EG's own config file, from a ConfigMap mounted on
#     /etc/jupyter-eg and found through JUPYTER_CONFIG_PATH (TCP_NODELAY on the kernel websocket).
# Needs kubectl (for "kubectl kustomize") or kustomize on the PATH.
#
# Helm 3:  helm upgrade --install ... --post-renderer deploy/kubernetes/enterprise-gateway/post-render/post-render.sh
# Helm 4:  helm plugin install deploy/kubernetes/enterprise-gateway/post-render   (once)
#          helm upgrade --install ... --post-renderer mcp-eg-post-render
set -eu

here=$(cd "$(dirname "$0")" && pwd -P)
config="$here/../../../gateway/nodelay_config.py"
if [ ! -f "$config" ]; then
    echo "post-render.sh: cannot find $config; run this script from a python-mcp-server checkout" \
        "(for Helm 4, install the plugin from the checkout's folder so that it links to it)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/chart.yaml"
cp "$here/kustomization.yaml" "$here/enterprise-gateway-patch.yaml" "$work/"
cp "$config" "$work/nodelay_config.py"

if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize "$work"
elif command -v kustomize >/dev/null 2>&1; then
    kustomize build "$work"
else
    echo "post-render.sh: needs kubectl or kustomize on the PATH" >&2
    exit 1
fi
