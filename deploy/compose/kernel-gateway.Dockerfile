# Jupyter Kernel Gateway 3 with the kernels inside its own container, for deploy/compose/compose.yaml.
# Build it from the repository's root:
#
#   docker build -f deploy/compose/kernel-gateway.Dockerfile -t python-mcp-server-kernel-gateway:2.0.0 .
#
# The kernels run the python3 kernelspec of the ipykernel installed here, so what sessions can
# import is what this image installs: add your packages to the pip line.
FROM python:3.12-slim

RUN pip install --no-cache-dir \
        "jupyter-kernel-gateway==3.0.1" \
        "jupyter-server>=2.14,<3" \
        "ipykernel>=6.29,<8" \
        "matplotlib>=3.8" "numpy>=1.26" "pandas>=2.2" "pillow>=10" "cloudpickle>=3" \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/kernel kernel \
    && install -d -o 1000 -g 1000 /home/kernel/work

# TCP_NODELAY on the kernel websocket (~40 ms less per message); see the file
COPY deploy/gateway/nodelay_config.py /etc/kernel-gateway/nodelay_config.py

USER 1000:1000
WORKDIR /home/kernel/work
# KG_AUTH_TOKEN comes from compose.yaml: without it the gateway accepts every request, so
# compose.yaml refuses to start when it is unset.
ENV KG_IP=0.0.0.0 \
    KG_PORT=8888 \
    KG_PORT_RETRIES=0 \
    KG_LIST_KERNELS=True \
    KG_DEFAULT_KERNEL_NAME=python3 \
    KG_MAX_KERNELS=32
EXPOSE 8888
CMD ["jupyter", "kernelgateway", \
     "--config=/etc/kernel-gateway/nodelay_config.py", \
     "--MappingKernelManager.cull_idle_timeout=3600", \
     "--MappingKernelManager.cull_interval=60", \
     "--MappingKernelManager.cull_connected=False"]
