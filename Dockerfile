# syntax=docker/dockerfile:1
# python-mcp-server in one container, its kernels sandboxed inside it with bubblewrap.
#
#   docker build -t python-mcp-server-single:2.0.0 .
#   docker build --build-arg EXTRAS=datascience -t python-mcp-server-single:2.0.0-datascience .
#
# Run it with compose.yaml beside this file, or with the `docker run` line in docs/deploy.md
# (section Docker), which also says which Docker settings the sandbox needs and why.
# Debian 12, as on the machines where the sandbox is tested (bubblewrap 0.8).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY src ./src
# "" or the package's extras, comma-separated: "datascience"
ARG EXTRAS=""
# The wheel, with every dependency at the version uv.lock pins (the lock, exported, constrains
# the install; extras are installed only when asked for).
RUN uv build --wheel --out-dir /dist \
    && uv export --locked --no-dev --no-emit-project --no-hashes --all-extras \
        --output-file /dist/constraints.txt \
    && uv venv --python /usr/local/bin/python3 /opt/venv \
    && set -- /dist/*.whl \
    && uv pip install --python /opt/venv/bin/python --constraint /dist/constraints.txt \
        "$1${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE}
# bubblewrap builds each kernel's sandbox. Its version follows Debian 12's security updates;
# pinning one would break the build at the next update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*
# The server runs as this user. UID is a build argument so that a token file made by your own
# user on the host (chmod 600) is this user's inside the container: the server refuses a token
# file another user owns.
ARG UID=10001
RUN groupadd --gid "${UID}" mcp \
    && useradd --uid "${UID}" --gid mcp --create-home --home-dir /home/mcp --shell /usr/sbin/nologin mcp \
    && install -d -o mcp -g mcp -m 0750 /workspace /home/mcp/.cache
# The environment stays root's: read-only to the server and to kernels. Packages a session needs
# go into an environment of its own (create_session(dependencies=[...])), under /home/mcp.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHON_MCP_SERVER_WORKSPACE_DIR=/workspace
USER ${UID}:${UID}
WORKDIR /home/mcp
VOLUME ["/workspace"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=6s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/health', timeout=5)"]
ENTRYPOINT ["python-mcp-server"]
# Any address needs a token of 16 characters or more: mount the file (mode 600, owned by UID)
# at /run/secrets/mcp_auth_token.
CMD ["--transport=http", "--host=0.0.0.0", "--port=8000", "--auth-token-file=/run/secrets/mcp_auth_token"]
