/*
 * nccl: a stand-in NCCL, built as libnccl-emu.so.2 and opened at run time by
 * cuda/cuda_nccl.c's own search (the emulated build names this file instead
 * of libnccl.so.2, so it never opens the real one). It serves what the
 * weight broadcast calls: ncclCommInitAll, group calls, ncclBroadcast,
 * ncclCommDestroy, and moves the bytes with the CUDA runtime's peer copies
 * (the emulator's, which the program exports).
 *
 * What would hang or fail with the real NCCL aborts here, naming it: a
 * collective of a communicator of several ranks outside a group when one
 * thread drives them all; ranks of one group that disagree (count, type,
 * root) or one missing; a communicator destroyed while a group is open.
 * CUDA_EMU_NCCL_FAIL=N makes the N-th ncclBroadcast fail, for the callers'
 * error paths.
 */
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

struct ncclComm {
    int rank, nranks, device;
    int clique; /* the ncclCommInitAll that made it */
};

namespace {

struct broadcast_op {
    const void *send;
    void *recv;
    size_t bytes;
    int root;
    ncclComm_t comm;
    cudaStream_t stream;
};

thread_local int group_depth;
thread_local std::vector<broadcast_op> pending;
int cliques, broadcasts;

[[noreturn]] void hang(const char *what) {
    fprintf(stderr, "nccl-emu: %s (the real NCCL may hang here)\n", what);
    abort();
}

size_t type_size(ncclDataType_t t) {
    switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
    }
}

/* One broadcast of every rank of a communicator: each rank's stream first
 * waits for the root's stream to reach the root's call, then copies. */
ncclResult_t run_broadcast(const std::vector<broadcast_op> &ranks) {
    const broadcast_op *root = nullptr;
    for (auto &r : ranks)
        if (r.comm->rank == r.root) root = &r;
    int dev = 0;
    cudaGetDevice(&dev);
    cudaEvent_t at_root;
    cudaSetDevice(root->comm->device);
    cudaEventCreate(&at_root);
    if (cudaEventRecord(at_root, root->stream) != cudaSuccess) return ncclUnhandledCudaError;
    ncclResult_t rc = ncclSuccess;
    for (auto &r : ranks) {
        cudaSetDevice(r.comm->device);
        if (r.recv == root->send) continue; /* the root in place */
        if (cudaStreamWaitEvent(r.stream, at_root, 0) != cudaSuccess ||
            cudaMemcpyPeerAsync(r.recv, r.comm->device, root->send, root->comm->device, r.bytes, r.stream) != cudaSuccess)
            rc = ncclUnhandledCudaError;
    }
    cudaEventDestroy(at_root);
    cudaSetDevice(dev);
    return rc;
}

/* Runs the group's collectives: the k-th of every rank of a clique together. */
ncclResult_t run_group(std::vector<broadcast_op> ops) {
    ncclResult_t rc = ncclSuccess;
    while (!ops.empty()) {
        const broadcast_op first = ops[0];
        std::vector<broadcast_op> together;
        std::vector<bool> seen(first.comm->nranks, false);
        for (size_t i = 0; i < ops.size();) {
            const broadcast_op &o = ops[i];
            if (o.comm->clique == first.comm->clique && !seen[o.comm->rank]) {
                if (o.bytes != first.bytes || o.root != first.root) hang("ranks of one broadcast disagree on its count, type or root");
                seen[o.comm->rank] = true;
                together.push_back(o);
                ops.erase(ops.begin() + (long)i);
            } else {
                i++;
            }
        }
        if ((int)together.size() != first.comm->nranks) hang("a group ends with a broadcast that not every rank of its communicator joined");
        ncclResult_t r = run_broadcast(together);
        if (r != ncclSuccess) rc = r;
    }
    return rc;
}

} /* namespace */

extern "C" {

ncclResult_t ncclGetVersion(int *version) {
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (nccl-emu: see the CUDA message above)";
    case ncclSystemError: return "unhandled system error (nccl-emu: injected by CUDA_EMU_NCCL_FAIL)";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    default: return "nccl-emu: another error";
    }
}

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int n, const int *devlist) {
    int count = 0;
    if (n < 1 || cudaGetDeviceCount(&count) != cudaSuccess) return ncclInvalidArgument;
    for (int i = 0; i < n; i++) {
        int d = devlist ? devlist[i] : i;
        if (d < 0 || d >= count) return ncclInvalidArgument;
        for (int j = 0; j < i; j++)
            if ((devlist ? devlist[j] : j) == d) return ncclInvalidUsage; /* NCCL: "Duplicate GPU detected" */
    }
    int clique = ++cliques;
    for (int i = 0; i < n; i++) comms[i] = new ncclComm{i, n, devlist ? devlist[i] : i, clique};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (group_depth > 0) hang("ncclCommDestroy while a group is open on this thread (ncclGroupStart without ncclGroupEnd)");
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclGroupStart(void) {
    group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
    if (group_depth == 0) return ncclInvalidUsage;
    if (--group_depth > 0) return ncclSuccess;
    std::vector<broadcast_op> ops;
    ops.swap(pending);
    return run_group(ops);
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm, cudaStream_t stream) {
    const char *fail = getenv("CUDA_EMU_NCCL_FAIL");
    if (fail && ++broadcasts == atoi(fail)) return ncclSystemError;
    if (!comm || type_size(type) == 0 || root < 0 || root >= comm->nranks) return ncclInvalidArgument;
    int stream_dev = -1;
    if (cudaStreamGetDevice(stream, &stream_dev) != cudaSuccess || stream_dev != comm->device) return ncclInvalidArgument;
    broadcast_op op{send, recv, count * type_size(type), root, comm, stream};
    if (group_depth == 0) {
        if (comm->nranks > 1) hang("ncclBroadcast outside a group on a communicator of several ranks driven by one thread");
        return run_group({op});
    }
    pending.push_back(op);
    return ncclSuccess;
}

} /* extern "C" */
