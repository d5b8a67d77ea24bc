// What Ploutos needs of libtorch that tch 0.24 does not wrap, as a few C functions:
// - whether f32 matrix products on CUDA may use TF32 tensor cores (PyTorch's
//   `torch.backends.cuda.matmul.allow_tf32`, i.e. `torch.set_float32_matmul_precision`);
// - CUDA graphs (PyTorch's `torch.cuda.CUDAGraph`): a rollout step's network is a dozen
//   small kernels whose launches cost more than their arithmetic, an update's minibatch
//   some two hundred; captured once, each replays them with one launch.
// Built by build.rs with the `learner` feature only, against the headers of the libtorch
// that tch links; without CUDA's headers the graph functions say they are unsupported.
#include <ATen/Context.h>

#include <exception>
#include <string>

namespace {
thread_local std::string last_error;

template <typename F>
int guarded(F&& f) {
    try {
        f();
        return 0;
    } catch (const std::exception& e) {
        last_error = e.what();
    } catch (...) {
        last_error = "unknown C++ exception";
    }
    return 1;
}
}  // namespace

extern "C" {

// The message of the last failed call on this thread.
const char* ploutos_last_error() { return last_error.c_str(); }

// Sets the float32 matmul precision (`torch.set_float32_matmul_precision`): 0 "highest"
// (IEEE f32, PyTorch's default), 1 "high" (TF32 allowed), 2 "medium" (bf16 allowed).
// Returns 0, or 1 when libtorch threw or `precision` is none of these.
int ploutos_set_matmul_precision(int precision) {
    static const char* const names[] = {"highest", "high", "medium"};
    if (precision < 0 || precision > 2) {
        last_error = "matmul precision " + std::to_string(precision) + " is not 0, 1 or 2";
        return 1;
    }
    return guarded([&] { at::globalContext().setFloat32MatmulPrecision(names[precision]); });
}

// The float32 matmul precision now, numbered as above; -1 when libtorch threw.
int ploutos_matmul_precision() {
    int precision = -1;
    if (guarded([&] {
            switch (at::globalContext().float32MatmulPrecision()) {
                case at::Float32MatmulPrecision::HIGHEST: precision = 0; break;
                case at::Float32MatmulPrecision::HIGH: precision = 1; break;
                case at::Float32MatmulPrecision::MEDIUM: precision = 2; break;
            }
        }) != 0) {
        return -1;
    }
    return precision;
}
}

#ifdef PLOUTOS_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>



namespace {
// A graph and the streams around its capture: captures must run on a side stream, never
// on the default one, with the graph's device current; the caller's device and stream are
// made current again afterwards.
struct Graph {
    at::cuda::CUDAGraph graph;
    c10::cuda::CUDAStream caller;
    c10::cuda::CUDAStream side;
    // The caller's current device, current again after `ploutos_graph_leave`.
    c10::DeviceIndex caller_device;
    Graph(c10::DeviceIndex device)
        : caller(c10::cuda::getCurrentCUDAStream(device)),
          side(c10::cuda::getStreamFromPool(false, device)),
          caller_device(c10::cuda::current_device()) {}
};
}  // namespace

extern "C" {

int ploutos_cuda_graphs_supported() { return 1; }

// A new graph for `device`, with its side stream made current (after the device is idle):
// the caller runs warm-up passes on it, then capture_begin. NULL on failure.
void* ploutos_graph_new(int device) {
    Graph* g = nullptr;
    int rc = guarded([&] {
        auto index = static_cast<c10::DeviceIndex>(device);
        g = new Graph(index);
        c10::cuda::set_device(index);
        c10::cuda::device_synchronize();
        c10::cuda::setCurrentCUDAStream(g->side);
    });
    if (rc != 0) {
        delete g;
        return nullptr;
    }
    return g;
}

// Thread-local capture: other threads (another run in the same process, the allocator's)
// may go on using CUDA while this one captures.
int ploutos_graph_capture_begin(void* g) {
    return guarded([&] { static_cast<Graph*>(g)->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal); });
}

int ploutos_graph_capture_end(void* g) {
    return guarded([&] { static_cast<Graph*>(g)->graph.capture_end(); });
}

// Makes the caller's stream and device current again, then waits for the side stream.
int ploutos_graph_leave(void* g) {
    auto* graph = static_cast<Graph*>(g);
    int restored = guarded([&] {
        c10::cuda::setCurrentCUDAStream(graph->caller);
        c10::cuda::set_device(graph->caller_device);
    });
    int waited = guarded([&] { graph->side.synchronize(); });
    return restored != 0 ? restored : waited;
}

// Replays the captured kernels on the current stream.
int ploutos_graph_replay(void* g) {
    return guarded([&] { static_cast<Graph*>(g)->graph.replay(); });
}

void ploutos_graph_free(void* g) { delete static_cast<Graph*>(g); }
}
#else
extern "C" {
int ploutos_cuda_graphs_supported() { return 0; }
void* ploutos_graph_new(int) {
    last_error = "this build has no CUDA graphs (CUDA's headers were not found at build time)";
    return nullptr;
}
int ploutos_graph_capture_begin(void*) { return 1; }
int ploutos_graph_capture_end(void*) { return 1; }
int ploutos_graph_leave(void*) { return 1; }
int ploutos_graph_replay(void*) { return 1; }
void ploutos_graph_free(void*) {}
}
#endif
