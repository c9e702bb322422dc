/*
 * emu.h: what the emulator's own parts share (scheduler.cpp, runtime.cpp,
 * cublas.cpp); kernels and the program never see it.
 *
 * Every operation on a stream is queued and runs only when something waits
 * for that stream (or its queue grows long, as a GPU runs ahead), so work on
 * two streams with no ordering between them runs in the worst order. All
 * queues and every run of an operation are under one process-wide lock.
 */
#ifndef LM_CUDA_EMU_INTERNAL_H
#define LM_CUDA_EMU_INTERNAL_H

#include "cuda_emu.h"

#include <functional>
#include <mutex>

namespace lm_emu {

/* "cuda-emu: ..." on stderr; CUDA_EMU_ABORT=1 aborts there (for a debugger). */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The lock every queue and every run of an operation holds. */
std::recursive_mutex &exec_lock();

/* The device whose allocations wholly hold [p, p + n), or -1. */
int device_of(const void *p, size_t n);
int current_device();

/* gridDim.y and .z's limit: 65,535 as on every GPU, or CUDA_EMU_MAX_GRID_YZ
 * (lower, so that a test of "more rows than that" stays quick here). */
int grid_yz_limit();

/* The stream's device, or -1 for a handle that is not a live stream. The
 * legacy default stream (0) is the current device's. */
int stream_device(cudaStream_t s);

/* Queues op on stream s (already checked); bytes is the host memory it holds
 * until it runs. An op returns cudaSuccess or a sticky error, which
 * discards the device's queued work and fails every later call there. */
void enqueue(cudaStream_t s, std::function<cudaError_t()> op, size_t bytes = 0);

/* For a call the capturing thread may not make while it captures (cuBLAS's
 * own allocations, cublas.cpp): false when this thread captures nothing;
 * else the capture is invalidated, the call named on stderr, and true. */
bool refuse_in_capture(const char *call);

/* The calling thread's last error (what cudaGetLastError returns next). */
void set_last_error(cudaError_t e);

/* Counted per device for CUDA_EMU_STATS (runtime.cpp). */
enum stat_kind { STAT_KERNELS, STAT_H2D, STAT_D2H, STAT_PEER_IN, STAT_GEMMS, STAT_GRAPHS, N_STATS };
void count(int device, stat_kind k, size_t n);

/* Runs one queued grid (scheduler.cpp): cudaSuccess or cudaErrorLaunchFailure. */
struct grid_job {
    const char *kernel;
    dim3 grid, block;
    size_t shmem;
    void (*body)(void *);
    void *ctx;
};
cudaError_t run_grid(const grid_job &job);

} /* namespace lm_emu */

#endif
