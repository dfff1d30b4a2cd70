"""GPU memory sharing (MortalGPU): NVML adapter, device plugin, enforcer, exporter, mgctl.

Layer rules (checked by import-linter): may import ``identity``; never ``kubepie`` or
``hubintegration``. ``pynvml`` is imported only in the NVML adapter and ``grpc`` only in the
gRPC adapters; allocation policy, cgroup parsing and metric families are pure.
"""
