/*
 * A small fake libnvidia-ml.so.1 for tests: the real pynvml loads it and calls these symbols.
 *
 * The GPUs, MIG instances and processes come from the text file named by $FAKE_NVML_DATA,
 * read again on every call so that a test can change them while the code under test runs.
 * One entry per line, fields separated by blanks, sizes in MiB:
 *
 *   gpu  <index> <uuid> <total> <used> <util_gpu> <util_mem> <lost 0|1> <name...>
 *   mig  <gpu_index> <slot> <uuid> <gi> <ci> <total> <used> <name...>
 *   proc <device uuid> <pid> <used>
 *
 *   live_only          (processes whose PID does not exist are left out)
 *
 * A GPU with at least one "mig" line is in MIG mode. A "lost" GPU answers
 * NVML_ERROR_GPU_IS_LOST (15) to memory and utilization queries. Without $FAKE_NVML_DATA,
 * or when the file cannot be read, nvmlInit answers NVML_ERROR_DRIVER_NOT_LOADED (9).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GPUS 16
#define MAX_MIGS 7
#define MAX_PROCS 256
#define MIB 1048576ULL

typedef struct fake_device {
    int present, is_mig, index, slot, lost;
    unsigned gi, ci, util_gpu, util_mem;
    unsigned long long total, used;
    char uuid[96], name[96];
    struct fake_device *parent;
} fake_device;

typedef struct { char uuid[96]; unsigned pid; unsigned long long used; } fake_proc;

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

static fake_device gpus[MAX_GPUS];
static fake_device migs[MAX_GPUS][MAX_MIGS];
static fake_proc procs[MAX_PROCS];
static int n_gpus, n_procs, live_only;

static void rest_of_line(char *dst, size_t size, const char *src) {
    while (*src == ' ' || *src == '\t') src++;
    snprintf(dst, size, "%s", src);
    dst[strcspn(dst, "\r\n")] = 0;
}

static int load(void) {
    const char *path = getenv("FAKE_NVML_DATA");
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[512];
    if (!f) return 9;
    memset(gpus, 0, sizeof gpus);
    memset(migs, 0, sizeof migs);
    n_gpus = n_procs = live_only = 0;
    while (fgets(line, sizeof line, f)) {
        int idx, slot, lost, off = 0;
        unsigned gi, ci, ug, um, pid;
        unsigned long long total, used;
        char uuid[96];
        if (sscanf(line, "gpu %d %95s %llu %llu %u %u %d %n", &idx, uuid, &total, &used, &ug,
                   &um, &lost, &off) == 7 && off > 0 && idx >= 0 && idx < MAX_GPUS) {
            fake_device *d = &gpus[idx];
            d->present = 1; d->index = idx; d->lost = lost; d->util_gpu = ug; d->util_mem = um;
            d->total = total * MIB; d->used = used * MIB;
            snprintf(d->uuid, sizeof d->uuid, "%s", uuid);
            rest_of_line(d->name, sizeof d->name, line + off);
            if (idx + 1 > n_gpus) n_gpus = idx + 1;
        } else if (sscanf(line, "mig %d %d %95s %u %u %llu %llu %n", &idx, &slot, uuid, &gi, &ci,
                          &total, &used, &off) == 7 && off > 0 && idx >= 0 && idx < MAX_GPUS
                   && slot >= 0 && slot < MAX_MIGS) {
            fake_device *d = &migs[idx][slot];
            d->present = 1; d->is_mig = 1; d->index = idx; d->slot = slot; d->gi = gi; d->ci = ci;
            d->total = total * MIB; d->used = used * MIB; d->parent = &gpus[idx];
            snprintf(d->uuid, sizeof d->uuid, "%s", uuid);
            rest_of_line(d->name, sizeof d->name, line + off);
        } else if (strncmp(line, "live_only", 9) == 0) {
            live_only = 1;
        } else if (sscanf(line, "proc %95s %u %llu", uuid, &pid, &used) == 3
                   && n_procs < MAX_PROCS) {
            snprintf(procs[n_procs].uuid, sizeof procs[n_procs].uuid, "%s", uuid);
            procs[n_procs].pid = pid;
            procs[n_procs].used = used * MIB;
            n_procs++;
        }
    }
    fclose(f);
    return 0;
}

static int mig_mode(const fake_device *gpu) {
    for (int s = 0; s < MAX_MIGS; s++)
        if (migs[gpu->index][s].present) return 1;
    return 0;
}

int nvmlInitWithFlags(unsigned flags) { (void)flags; return load(); }
int nvmlInit_v2(void) { return load(); }
int nvmlInit(void) { return load(); }
int nvmlShutdown(void) { return 0; }

const char *nvmlErrorString(int result) {
    switch (result) {
    case 0: return "Success";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 15: return "GPU is lost";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetDriverVersion(char *version, unsigned length) {
    snprintf(version, length, "%s", "999.99.fake");
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned *count) {
    int rc = load();
    if (rc) return rc;
    *count = (unsigned)n_gpus;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned index, fake_device **device) {
    int rc = load();
    if (rc) return rc;
    if (index >= MAX_GPUS || !gpus[index].present) return 2;
    *device = &gpus[index];
    return 0;
}

int nvmlDeviceGetUUID(fake_device *d, char *uuid, unsigned length) {
    snprintf(uuid, length, "%s", d->uuid);
    return 0;
}

int nvmlDeviceGetName(fake_device *d, char *name, unsigned length) {
    snprintf(name, length, "%s", d->name);
    return 0;
}

int nvmlDeviceGetIndex(fake_device *d, unsigned *index) {
    *index = (unsigned)d->index;
    return 0;
}

int nvmlDeviceGetMemoryInfo(fake_device *d, nvmlMemory_t *memory) {
    load();
    if ((d->is_mig ? d->parent : d)->lost) return 15;
    memory->total = d->total;
    memory->used = d->used;
    memory->free = d->total > d->used ? d->total - d->used : 0;
    return 0;
}

int nvmlDeviceGetUtilizationRates(fake_device *d, nvmlUtilization_t *util) {
    load();
    if (d->is_mig) return 3;
    if (d->lost) return 15;
    util->gpu = d->util_gpu;
    util->memory = d->util_mem;
    return 0;
}

int nvmlDeviceGetMigMode(fake_device *d, unsigned *current, unsigned *pending) {
    load();
    if (d->is_mig) return 2;
    *current = *pending = (unsigned)mig_mode(d);
    return 0;
}

int nvmlDeviceGetMaxMigDeviceCount(fake_device *d, unsigned *count) {
    if (d->is_mig) return 2;
    *count = MAX_MIGS;
    return 0;
}

int nvmlDeviceGetMigDeviceHandleByIndex(fake_device *d, unsigned index, fake_device **mig) {
    load();
    if (d->is_mig || index >= MAX_MIGS) return 2;
    if (!migs[d->index][index].present) return 6;
    *mig = &migs[d->index][index];
    return 0;
}

int nvmlDeviceIsMigDeviceHandle(fake_device *d, unsigned *is_mig) {
    *is_mig = (unsigned)d->is_mig;
    return 0;
}

int nvmlDeviceGetGpuInstanceId(fake_device *d, unsigned *id) {
    if (!d->is_mig) return 2;
    *id = d->gi;
    return 0;
}

int nvmlDeviceGetComputeInstanceId(fake_device *d, unsigned *id) {
    if (!d->is_mig) return 2;
    *id = d->ci;
    return 0;
}

int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(fake_device *d, fake_device **parent) {
    if (!d->is_mig) return 2;
    *parent = d->parent;
    return 0;
}

/* Processes on a GPU (all its MIG instances included) or on one MIG instance. */
int nvmlDeviceGetComputeRunningProcesses_v3(fake_device *d, unsigned *count,
                                            nvmlProcessInfo_t *infos) {
    unsigned found = 0;
    int rc = load();
    if (rc) return rc;
    if ((d->is_mig ? d->parent : d)->lost) return 15;
    for (int i = 0; i < n_procs; i++) {
        const fake_device *on = NULL;
        if (strcmp(procs[i].uuid, d->uuid) == 0) on = d;
        for (int s = 0; !on && !d->is_mig && s < MAX_MIGS; s++)
            if (migs[d->index][s].present && strcmp(procs[i].uuid, migs[d->index][s].uuid) == 0)
                on = &migs[d->index][s];
        if (!on) continue;
        if (live_only && kill((pid_t)procs[i].pid, 0) != 0 && errno == ESRCH) continue;
        if (infos && found < *count) {
            infos[found].pid = procs[i].pid;
            infos[found].usedGpuMemory = procs[i].used;
            infos[found].gpuInstanceId = on->is_mig ? on->gi : 0xFFFFFFFFu;
            infos[found].computeInstanceId = on->is_mig ? on->ci : 0xFFFFFFFFu;
        }
        found++;
    }
    if (!infos || found > *count) {
        *count = found;
        return found ? 7 : 0;
    }
    *count = found;
    return 0;
}
