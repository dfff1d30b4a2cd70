/*
 * A small fake libcuda.so.1 for running scripts/gpu-check without a GPU, together with the
 * fake NVML (fake_nvml.c). Creating the context and each cuMemAlloc_v2 append a line
 * "proc <uuid> <pid> <MiB>" to $FAKE_NVML_DATA for the device named by
 * $CUDA_VISIBLE_DEVICES, which the fake NVML then reports; with "live_only" in that file the
 * fake NVML drops the lines of processes that no longer exist, as the driver frees their memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CONTEXT_MIB 300ULL

static int record(unsigned long long mib) {
    const char *path = getenv("FAKE_NVML_DATA");
    const char *uuid = getenv("CUDA_VISIBLE_DEVICES");
    FILE *f = path && uuid ? fopen(path, "a") : NULL;
    if (!f) return 100; /* CUDA_ERROR_NO_DEVICE */
    fprintf(f, "proc %s %d %llu\n", uuid, (int)getpid(), mib);
    fclose(f);
    return 0;
}

int cuInit(unsigned flags) { (void)flags; return getenv("CUDA_VISIBLE_DEVICES") ? 0 : 100; }
int cuDeviceGet(int *device, int ordinal) { *device = ordinal; return ordinal == 0 ? 0 : 101; }
int cuDevicePrimaryCtxRetain(void **ctx, int device) {
    static int context;
    (void)device;
    *ctx = &context;
    return record(CONTEXT_MIB);
}
int cuCtxSetCurrent(void *ctx) { (void)ctx; return 0; }
int cuMemAlloc_v2(unsigned long long *ptr, size_t size) {
    static unsigned long long next = 0x100000000ULL;
    *ptr = next;
    next += size;
    return record(size >> 20);
}
int cuMemsetD8_v2(unsigned long long ptr, unsigned char value, size_t size) {
    (void)ptr; (void)value; (void)size;
    return 0;
}
int cuCtxSynchronize(void) { return 0; }
