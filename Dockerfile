# metacenter container image.
#
# No base image can be pulled on the project's machines, so the image is FROM scratch
# around a statically linked binary, built on the host first:
#
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu --bin metacenter
#   docker build -t metacenter .
#
# (scripts/docker-cluster.sh does both.) The binary resolves peer names itself
# (hickory DNS reading /etc/resolv.conf), so container names work as addresses
# without glibc's NSS libraries. It runs as uid 10001 with its state on /data.
FROM scratch
COPY docker/passwd /etc/passwd
COPY docker/group /etc/group
COPY --chown=10001:10001 docker/data/ /data/
COPY target/x86_64-unknown-linux-gnu/release/metacenter /metacenter
USER 10001:10001
VOLUME ["/data"]
ENV METACENTER_NODE_DATA_DIR=/data \
    METACENTER_NODE_LISTEN=0.0.0.0:8080 \
    METACENTER_NODE_PEER_LISTEN=0.0.0.0:8090
EXPOSE 8080 8090
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/metacenter", "health", "--node", "127.0.0.1:8080"]
ENTRYPOINT ["/metacenter"]
CMD ["run"]
