"""Generated protobuf and gRPC modules for the kubelet APIs (see ``scripts/gpu-protos``)."""
