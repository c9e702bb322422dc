/*
 * runtime: the part of libcudart that lyricmt, its tests and the NCCL
 * stand-in call, over host memory.
 *
 * Devices: CUDA_EMU_DEVICES of them (default 1), each with its own memory
 * (CUDA_EMU_MEMORY_MB, default 81,559 as an H100's), allocations, sticky
 * error and the current device per host thread. New memory is filled with
 * 0xff bytes (NaN) so a read of what was never written shows.
 *
 * Checks a GPU makes or would fault on: copies whose direction or range does
 * not match the memory (a range must lie within one allocation), kernels
 * given host or another device's memory, launches into another device's
 * stream (copies may use any stream, as CUDA allows).
 *
 * Ordering, as on a GPU: each stream (and each device's legacy default
 * stream) is a queue, run when the host waits for it: cudaStreamSynchronize,
 * an event, cudaDeviceSynchronize, cudaFree (every device's), a copy to pageable host memory
 * (which CUDA makes synchronous). A copy from pageable host memory reads its
 * source at the call, as CUDA's staging does. Pinned host memory
 * (cudaMallocHost) is copied when the stream runs, both ways, as a GPU's DMA
 * does: a host that rewrites a pinned source, or reads a pinned destination,
 * before waiting for the stream sees what a GPU could show. It is filled with
 * 0xff bytes too; cudaFreeHost waits for every device. Streams created without
 * cudaStreamNonBlocking share the legacy stream's queue (stricter than
 * CUDA, never looser).
 *
 * Stream capture (cudaStreamBeginCapture, thread-local mode; the graph is a
 * list of the queued operations, a launch queues them as one): what runs
 * when a captured graph is launched is exactly what was queued, so a pinned
 * copy reads its source at each launch, a kernel its arguments as they were
 * at the capture. What would break or invalidate a capture on a GPU fails
 * here too, naming the call: a synchronous or pageable copy, a stream or
 * device synchronization, an allocation or free, or an event, from the
 * capturing thread, and capturing a stream that shares the legacy queue
 * (stricter than CUDA, which only forbids the legacy stream itself).
 *
 * CUDA_EMU_MAX_GRID_YZ lowers gridDim.y and .z's limit (emu.h).
 *
 * CUDA_EMU_STATS=FILE appends, at exit, one line per device: kernels run,
 * bytes copied in from the host, out to it, in from another device, matrix
 * products, and graphs launched.
 */
#include "emu.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <time.h>
#include <unistd.h>
#include <vector>

struct CUstream_st {
    int device;
    std::deque<std::function<cudaError_t()>> queue;
    size_t held; /* host bytes the queued copies hold */
    unsigned long long queued, ran; /* operations ever queued, ever run (or discarded) */
    std::vector<std::function<cudaError_t()>> *capture; /* while captured: where its operations go instead */
    bool capture_invalid;                               /* something the capture cannot hold was asked */
};

typedef std::vector<std::function<cudaError_t()>> op_list;

struct CUgraph_st {
    op_list ops;
    int device;
};

struct CUgraphExec_st {
    std::shared_ptr<const op_list> ops; /* shared with its launches still queued */
    int device;
};

struct CUevent_st {
    CUstream_st *stream; /* where it was last recorded; null before */
    unsigned long long at; /* that stream's operation count at the record */
    double seconds;        /* when the record ran */
    bool timing;           /* made without cudaEventDisableTiming: cudaEventElapsedTime may read it */
};

namespace lm_emu {

namespace {

struct allocation {
    size_t bytes;
    int device;
};

struct device {
    size_t used = 0, capacity = 0;
    cudaError_t sticky = cudaSuccess;
    CUstream_st legacy{};
    std::vector<CUstream_st *> streams;
    unsigned long long stats[N_STATS] = {};
};

std::vector<device> *devices;
std::map<uintptr_t, allocation> *allocations; /* start -> its bytes and device */
std::map<uintptr_t, size_t> *pinned;           /* cudaMallocHost: start -> its bytes */
std::vector<CUstream_st *> *destroyed;        /* streams destroyed, kept for the events recorded on them */
thread_local int current;
thread_local cudaError_t last_error;
thread_local CUstream_st *capturing; /* the stream this thread captures (thread-local mode), or null */

/* queues longer than this run their oldest work, as a GPU runs ahead */
const size_t QUEUE_OPS = 512, QUEUE_BYTES = (size_t)256 << 20;

void write_stats() {
    const char *path = getenv("CUDA_EMU_STATS");
    FILE *f = path && *path ? fopen(path, "a") : nullptr;
    if (!f) return;
    for (size_t d = 0; d < devices->size(); d++) {
        const unsigned long long *s = (*devices)[d].stats;
        fprintf(f, "pid %d device %zu kernels %llu h2d %llu d2h %llu peer_in %llu gemms %llu graphs %llu\n", (int)getpid(), d,
                s[STAT_KERNELS], s[STAT_H2D], s[STAT_D2H], s[STAT_PEER_IN], s[STAT_GEMMS], s[STAT_GRAPHS]);
    }
    fclose(f);
}

void init_devices() {
    if (devices) return;
    const char *n = getenv("CUDA_EMU_DEVICES"), *mb = getenv("CUDA_EMU_MEMORY_MB");
    int count = n && *n ? atoi(n) : 1;
    if (count < 0 || count > 16) {
        report("CUDA_EMU_DEVICES=%s: expected 0 to 16", n);
        exit(2);
    }
    devices = new std::vector<device>(count);
    allocations = new std::map<uintptr_t, allocation>;
    pinned = new std::map<uintptr_t, size_t>;
    destroyed = new std::vector<CUstream_st *>;
    for (auto &d : *devices) {
        d.capacity = (mb && *mb ? (size_t)atoll(mb) : 81559) << 20;
        d.legacy.device = (int)(&d - devices->data());
    }
    atexit(write_stats);
}

device *dev(int d) { return d >= 0 && d < (int)devices->size() ? &(*devices)[d] : nullptr; }

double now() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

CUstream_st *queue_of(cudaStream_t s) {
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &dev(current)->legacy;
    return (CUstream_st *)s;
}

bool live_stream(cudaStream_t s) {
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
    for (auto &d : *devices) {
        if ((CUstream_st *)s == &d.legacy) return true; /* a blocking stream's handle */
        for (auto *t : d.streams)
            if (t == (CUstream_st *)s) return true;
    }
    return false;
}

/* Runs q's operations until `upto` of them have run; a failure is sticky. */
cudaError_t drain(CUstream_st *q, unsigned long long upto) {
    device *d = dev(q->device);
    while (q->ran < upto && !q->queue.empty()) {
        if (d->sticky != cudaSuccess) break;
        std::function<cudaError_t()> op = std::move(q->queue.front());
        q->queue.pop_front();
        q->ran++;
        cudaError_t e = op();
        if (e != cudaSuccess) d->sticky = e;
    }
    if (d->sticky != cudaSuccess) { /* a failed device runs nothing more */
        q->ran += q->queue.size();
        q->queue.clear();
    }
    if (q->queue.empty()) q->held = 0;
    return d->sticky;
}

cudaError_t drain_all(CUstream_st *q) { return drain(q, q->queued); }

cudaError_t drain_device(int d) {
    device *v = dev(d);
    drain_all(&v->legacy);
    for (auto *s : v->streams) drain_all(s);
    return v->sticky;
}

cudaError_t fail(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cudaError_t fail(cudaError_t e, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    report("%s", buf);
    last_error = e;
    return e;
}


const char *kind_name(cudaMemcpyKind k) {
    switch (k) {
    case cudaMemcpyHostToDevice: return "host to device";
    case cudaMemcpyDeviceToHost: return "device to host";
    case cudaMemcpyDeviceToDevice: return "device to device";
    case cudaMemcpyHostToHost: return "host to host";
    default: return "default";
    }
}

/* The copy's checks, then the copy queued on s; `wait` for a synchronous one. */
/* Whether [p, p + n) lies within one cudaMallocHost block. */
bool is_pinned(const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p;
    auto it = pinned->upper_bound(a);
    if (it == pinned->begin()) return false;
    --it;
    return a >= it->first && a - it->first <= it->second && n <= it->second - (a - it->first);
}

cudaError_t copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s, bool wait) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaMemcpy: %p is not a live stream", (void *)s);
    CUstream_st *q = queue_of(s);
    if (dev(q->device)->sticky) return dev(q->device)->sticky;
    if (n == 0) return cudaSuccess;
    int dd = device_of(dst, n), sd = device_of(src, n);
    if (kind == cudaMemcpyDefault) kind = dd >= 0 ? (sd >= 0 ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                                 : (sd >= 0 ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    bool ok = kind == cudaMemcpyHostToDevice     ? dd >= 0 && device_of(src, 0) < 0
              : kind == cudaMemcpyDeviceToHost   ? sd >= 0 && device_of(dst, 0) < 0
              : kind == cudaMemcpyDeviceToDevice ? dd >= 0 && sd >= 0
                                                 : kind == cudaMemcpyHostToHost;
    if (!ok)
        return fail(cudaErrorInvalidValue, "cudaMemcpy (%s, %zu bytes): destination %p is %s, source %p is %s", kind_name(kind), n, dst, dd >= 0 ? "device memory" : "not (wholly) device memory", src,
                    sd >= 0 ? "device memory" : "not (wholly) device memory");
    bool pageable = (kind == cudaMemcpyHostToDevice && !is_pinned(src, n)) || (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, n)) ||
                    kind == cudaMemcpyHostToHost;
    if ((wait || (q->capture && pageable)) && refuse_in_capture(wait ? "cudaMemcpy (synchronous)" : "cudaMemcpyAsync to or from pageable memory"))
        return cudaErrorStreamCaptureUnsupported;
    if (kind == cudaMemcpyHostToDevice && !is_pinned(src, n)) { /* pageable: the source is read now, written to the device in stream order */
        auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char *)src, (const unsigned char *)src + n);
        count(dd, STAT_H2D, n);
        enqueue((cudaStream_t)q, [dst, staged] {
            memcpy(dst, staged->data(), staged->size());
            return cudaSuccess;
        }, n);
        return cudaSuccess;
    }
    enqueue((cudaStream_t)q, [dst, src, n, kind, sd, dd] { /* counted as it runs: a graph's copy each launch */
        if (kind == cudaMemcpyDeviceToHost) count(sd, STAT_D2H, n);
        if (kind == cudaMemcpyHostToDevice) count(dd, STAT_H2D, n);
        memmove(dst, src, n);
        return cudaSuccess;
    });
    if (wait || (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, n))) return drain_all(q); /* to pageable memory: synchronous */
    return cudaSuccess;
}

} /* namespace */

/* A call the capturing thread may not make while it captures (emu.h): the
 * capture is invalidated (its end fails) and the call fails, as on a GPU. */
bool refuse_in_capture(const char *call) {
    if (!capturing) return false;
    capturing->capture_invalid = true;
    fail(cudaErrorStreamCaptureUnsupported, "%s while this thread captures stream %p: not allowed in a capture (the capture is invalidated)",
         call, (void *)capturing);
    return true;
}

void report(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuda-emu: %s\n", buf);
    const char *ab = getenv("CUDA_EMU_ABORT");
    if (ab && *ab == '1') abort();
}

std::recursive_mutex &exec_lock() {
    static std::recursive_mutex m;
    return m;
}

int device_of(const void *p, size_t n) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    uintptr_t a = (uintptr_t)p;
    auto it = allocations->upper_bound(a);
    if (it == allocations->begin()) return -1;
    --it;
    /* one past the end counts for an empty range, as a pointer may point there */
    return a >= it->first && a - it->first <= it->second.bytes && n <= it->second.bytes - (a - it->first) ? it->second.device : -1;
}

int current_device() {
    init_devices();
    return current;
}

int grid_yz_limit() {
    static int limit = [] {
        const char *e = getenv("CUDA_EMU_MAX_GRID_YZ");
        int v = e && *e ? atoi(e) : 65535;
        return v > 0 && v <= 65535 ? v : 65535;
    }();
    return limit;
}

int stream_device(cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    return live_stream(s) ? queue_of(s)->device : -1;
}

void enqueue(cudaStream_t s, std::function<cudaError_t()> op, size_t bytes) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    CUstream_st *q = queue_of(s);
    if (q->capture) { /* captured: it runs when the graph is launched */
        q->capture->push_back(std::move(op));
        return;
    }
    q->queue.push_back(std::move(op));
    q->queued++;
    q->held += bytes;
    if (q->queue.size() > QUEUE_OPS || q->held > QUEUE_BYTES) drain(q, q->ran + q->queue.size() / 2 + 1);
}

void set_last_error(cudaError_t e) { last_error = e; }

void count(int d, stat_kind k, size_t n) {
    if (dev(d)) dev(d)->stats[k] += n;
}

} /* namespace lm_emu */

using namespace lm_emu;

extern "C" {

cudaError_t cudaGetDeviceCount(int *n) {
    init_devices();
    *n = (int)devices->size();
    return devices->empty() ? (last_error = cudaErrorNoDevice) : cudaSuccess;
}

cudaError_t cudaSetDevice(int d) {
    init_devices();
    if (!dev(d)) return fail(cudaErrorInvalidDevice, "cudaSetDevice(%d): there are %zu devices", d, devices->size());
    current = d;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d) {
    *d = current_device();
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    init_devices();
    if (!dev(d)) return fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties(%d)", d);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuda-emu device %d (a CPU)", d);
    p->totalGlobalMem = dev(d)->capacity;
    p->maxThreadsPerBlock = 1024;
    p->sharedMemPerBlock = 48 * 1024;
    p->multiProcessorCount = 1;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = p->maxGridSize[2] = grid_yz_limit();
    p->major = 9;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    device *v = dev(current_device());
    if (!v) return fail(cudaErrorNoDevice, "cudaMemGetInfo: no device");
    *free_bytes = v->capacity - v->used;
    *total = v->capacity;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t size) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
    device *v = dev(current_device());
    if (!v) return fail(cudaErrorNoDevice, "cudaMalloc: no device");
    if (v->sticky) return v->sticky;
    void *m = nullptr;
    if (size > v->capacity - v->used || posix_memalign(&m, 256, size ? size : 1) != 0) {
        *p = nullptr;
        return last_error = cudaErrorMemoryAllocation;
    }
    memset(m, 0xff, size);
    v->used += size;
    (*allocations)[(uintptr_t)m] = allocation{size, current};
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaFree")) return cudaErrorStreamCaptureUnsupported;
    init_devices();
    if (!p) return cudaSuccess;
    auto it = allocations->find((uintptr_t)p);
    if (it == allocations->end()) return fail(cudaErrorInvalidValue, "cudaFree(%p): not the start of a cudaMalloc block", p);
    for (int d = 0; d < (int)devices->size(); d++) drain_device(d); /* cudaFree waits: a peer copy may still read it */
    dev(it->second.device)->used -= it->second.bytes;
    allocations->erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t size) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaMallocHost")) return cudaErrorStreamCaptureUnsupported;
    init_devices();
    void *m = nullptr;
    if (posix_memalign(&m, 4096, size ? size : 1) != 0) {
        *p = nullptr;
        return last_error = cudaErrorMemoryAllocation;
    }
    memset(m, 0xff, size);
    (*pinned)[(uintptr_t)m] = size;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaFreeHost")) return cudaErrorStreamCaptureUnsupported;
    init_devices();
    if (!p) return cudaSuccess;
    auto it = pinned->find((uintptr_t)p);
    if (it == pinned->end()) return fail(cudaErrorInvalidValue, "cudaFreeHost(%p): not the start of a cudaMallocHost block", p);
    for (int d = 0; d < (int)devices->size(); d++) drain_device(d); /* a queued copy may still use it */
    pinned->erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) { return copy(dst, src, n, kind, nullptr, true); }

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
    return copy(dst, src, n, kind, s, false);
}

cudaError_t cudaMemcpyPeerAsync(void *dst, int dst_dev, const void *src, int src_dev, size_t n, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaMemcpyPeerAsync: %p is not a live stream", (void *)s);
    if (n && (device_of(dst, n) != dst_dev || device_of(src, n) != src_dev))
        return fail(cudaErrorInvalidValue, "cudaMemcpyPeerAsync(%zu bytes): destination %p is not device %d's memory or source %p not device %d's", n,
                    dst, dst_dev, src, src_dev);
    count(dst_dev, STAT_PEER_IN, n);
    enqueue(s, [dst, src, n] {
        memmove(dst, src, n);
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: %p is not a live stream", (void *)s);
    if (n && device_of(p, n) < 0) return fail(cudaErrorInvalidValue, "cudaMemsetAsync(%p, %zu bytes): not (wholly) device memory", p, n);
    enqueue(s, [p, v, n] {
        memset(p, v, n);
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t n) { return cudaMemsetAsync(p, v, n, nullptr); }

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *a, const void *p) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    int d = device_of(p, 0);
    bool host = d < 0 && is_pinned(p, 1);
    memset(a, 0, sizeof *a);
    a->type = d >= 0 ? cudaMemoryTypeDevice : host ? cudaMemoryTypeHost : cudaMemoryTypeUnregistered;
    a->device = d >= 0 ? d : -2;
    a->devicePointer = d >= 0 || host ? (void *)p : nullptr;
    a->hostPointer = host ? (void *)p : nullptr;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    device *v = dev(current_device());
    if (!v) return fail(cudaErrorNoDevice, "cudaStreamCreate: no device");
    if (!(flags & cudaStreamNonBlocking)) { /* a blocking stream: ordered with the legacy stream, here by sharing its queue */
        *s = (cudaStream_t)&v->legacy;
        return cudaSuccess;
    }
    CUstream_st *q = new CUstream_st();
    q->device = current;
    v->streams.push_back(q);
    *s = (cudaStream_t)q;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaStreamDestroy")) return cudaErrorStreamCaptureUnsupported;
    init_devices();
    if (!live_stream(s) || s == nullptr) return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(%p): not a live stream", (void *)s);
    CUstream_st *q = queue_of(s);
    if (q == &dev(q->device)->legacy) return cudaSuccess; /* a blocking stream (the legacy queue) */
    drain_all(q); /* its work still completes */
    auto &list = dev(q->device)->streams;
    for (size_t i = 0; i < list.size(); i++)
        if (list[i] == q) list.erase(list.begin() + (long)i);
    destroyed->push_back(q); /* an event recorded on it may still be waited for */
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize(%p): not a live stream", (void *)s);
    return drain_all(queue_of(s));
}

cudaError_t cudaStreamGetDevice(cudaStream_t s, int *d) {
    *d = stream_device(s);
    return *d < 0 ? fail(cudaErrorInvalidResourceHandle, "cudaStreamGetDevice(%p): not a live stream", (void *)s) : cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaDeviceSynchronize")) return cudaErrorStreamCaptureUnsupported;
    return drain_device(current_device());
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    if (flags & ~(unsigned)cudaEventDisableTiming)
        return fail(cudaErrorInvalidValue, "cudaEventCreateWithFlags: flags %#x (the emulator models cudaEventDisableTiming only)", flags);
    *e = new CUevent_st{nullptr, 0, 0, !(flags & cudaEventDisableTiming)};
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (e->stream) drain(e->stream, e->at); /* its record still runs */
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaEventRecord (events in a graph are not modelled)")) return cudaErrorStreamCaptureUnsupported;
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: %p is not a live stream", (void *)s);
    CUstream_st *q = queue_of(s);
    enqueue(s, [e] {
        e->seconds = now();
        return cudaSuccess;
    });
    e->stream = q;
    e->at = q->queued;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaEventSynchronize")) return cudaErrorStreamCaptureUnsupported;
    return e->stream ? drain(e->stream, e->at) : cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    (void)flags;
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (refuse_in_capture("cudaStreamWaitEvent (events in a graph are not modelled)")) return cudaErrorStreamCaptureUnsupported;
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: %p is not a live stream", (void *)s);
    if (!e->stream) return cudaSuccess; /* never recorded: nothing to wait for */
    CUstream_st *on = e->stream;
    unsigned long long at = e->at;
    enqueue(s, [on, at] { return drain(on, at); }); /* when s gets there, the other stream runs up to the record first */
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (!start->timing || !end->timing)
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event made with cudaEventDisableTiming");
    if (!start->stream || !end->stream || start->stream->ran < start->at || end->stream->ran < end->at)
        return fail(cudaErrorNotReady, "cudaEventElapsedTime: an event not recorded or not yet reached");
    *ms = (float)((end->seconds - start->seconds) * 1e3);
    return cudaSuccess;
}

/* ---- stream capture and graphs (thread-local mode only: what the backend asks for) ---- */

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamBeginCapture(%p): not a live stream", (void *)s);
    CUstream_st *q = queue_of(s);
    if (mode != cudaStreamCaptureModeThreadLocal)
        return fail(cudaErrorInvalidValue, "cudaStreamBeginCapture: mode %d (the emulator models cudaStreamCaptureModeThreadLocal only)", (int)mode);
    if (q == &dev(q->device)->legacy)
        return fail(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture(%p): the legacy stream, or a blocking stream sharing its queue, cannot be captured",
                    (void *)s);
    if (q->capture || capturing)
        return fail(cudaErrorIllegalState, "cudaStreamBeginCapture(%p): %s", (void *)s,
                    q->capture ? "the stream is already capturing" : "this thread already captures another stream");
    if (dev(q->device)->sticky) return dev(q->device)->sticky;
    q->capture = new op_list;
    q->capture_invalid = false;
    capturing = q;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    *graph = nullptr;
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamEndCapture(%p): not a live stream", (void *)s);
    CUstream_st *q = queue_of(s);
    if (!q->capture) return fail(cudaErrorIllegalState, "cudaStreamEndCapture(%p): the stream is not capturing", (void *)s);
    if (capturing != q) return fail(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture(%p): called from a thread that did not begin it", (void *)s);
    std::unique_ptr<op_list> ops(q->capture);
    bool invalid = q->capture_invalid;
    q->capture = nullptr;
    q->capture_invalid = false;
    capturing = nullptr;
    if (invalid) return last_error = cudaErrorStreamCaptureInvalidated;
    *graph = new CUgraph_st{std::move(*ops), q->device};
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *status) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamIsCapturing(%p): not a live stream", (void *)s);
    CUstream_st *q = queue_of(s);
    *status = !q->capture ? cudaStreamCaptureStatusNone : q->capture_invalid ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    if (!graph || flags) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: %s", graph ? "flags the emulator does not model" : "no graph");
    *exec = new CUgraphExec_st{std::make_shared<const op_list>(graph->ops), graph->device};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    init_devices();
    if (!exec) return fail(cudaErrorInvalidValue, "cudaGraphLaunch: no graph");
    if (!live_stream(s)) return fail(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: %p is not a live stream", (void *)s);
    if (queue_of(s)->device != exec->device)
        return fail(cudaErrorInvalidValue, "cudaGraphLaunch: a graph captured on device %d launched on a stream of device %d", exec->device,
                    queue_of(s)->device);
    if (dev(exec->device)->sticky) return dev(exec->device)->sticky;
    std::shared_ptr<const op_list> ops = exec->ops;
    int d = exec->device;
    enqueue(s, [ops, d] { /* in the order captured; the first failure stops it, sticky as any */
        count(d, STAT_GRAPHS, 1);
        for (const auto &op : *ops) {
            cudaError_t e = op();
            if (e != cudaSuccess) return e;
        }
        return cudaSuccess;
    });
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    delete exec; /* launches still queued hold their own reference to its operations */
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    if (e == cudaSuccess && devices && dev(current)) e = dev(current)->sticky;
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    if (last_error == cudaSuccess && devices && dev(current)) return dev(current)->sticky;
    return last_error;
}

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorDevicesUnavailable: return "cudaErrorDevicesUnavailable";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (cuda-emu: see its message above)";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure (cuda-emu: see its message above)";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (cuda-emu: see its message above)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (cuda-emu: see its message above)";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return cudaGetErrorName(e);
    }
}

} /* extern "C" */
