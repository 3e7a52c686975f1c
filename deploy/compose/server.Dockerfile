# The MCP server image, for deploy/compose/compose.yaml and deploy/kubernetes. Build it from the
# repository's root (the context must hold pyproject.toml, README.md and src/):
#
#   docker build -f deploy/compose/server.Dockerfile -t python-mcp-server:2.0.0 .
#
# It installs this checkout, because the gateway backend (--kernel-gateway-url) is newer than the
# release on PyPI; once a release has it, `--build-arg PACKAGE=python-mcp-server==<version>`
# installs that instead. Kernels never run in this container: they run on the gateway.
FROM python:3.12-slim

ARG PACKAGE=/src
COPY pyproject.toml README.md /src/
COPY src /src/src
# PACKAGE is this checkout (a path) or a release named with its version: pinned either way
# hadolint ignore=DL3013
RUN pip install --no-cache-dir "${PACKAGE}" \
    && rm -rf /src \
    && useradd --uid 10001 --user-group --no-create-home \
        --home-dir /var/lib/python-mcp-server mcp \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/python-mcp-server

USER 10001:10001
ENV HOME=/var/lib/python-mcp-server
WORKDIR /var/lib/python-mcp-server
EXPOSE 8000
ENTRYPOINT ["python-mcp-server"]
CMD ["--transport=http", "--host=0.0.0.0", "--port=8000"]
