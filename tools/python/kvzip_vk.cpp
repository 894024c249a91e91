// Python binding of the Session API (tools/python, pybind11): kvzip_vk.Model(path),
// Session.prefill / compress / ask / save / load, kvzip_vk.devices(). Engine calls release the GIL;
// engine errors raise ValueError (input) or RuntimeError (device, format) with the engine's
// message.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "kvzip/baselines.h"
#include "model/model.h"
#include "model/session.h"
#include "runtime/kv_quant.h"
#include "tools/cli_util.h"

namespace py = pybind11;

namespace kvz::py_binding {
namespace {

// A device and a model on it; sessions keep their Model alive (py::keep_alive).
struct PyModel {
  std::unique_ptr<Device> device;
  std::unique_ptr<Model> model;

  PyModel(const std::string& path, const std::string& device_selector, int ctx_size) {
    const std::string file = cli::resolve_model(path);  // also known names, e.g. "smollm2-135m"
    device = open_device(device_selector);
    model = Model::load(*device, file);
    if (ctx_size > 0) model->limit_context(ctx_size);
  }
};

struct PySession {
  Session session;

  PySession(PyModel& m, const std::string& cache_type_k, const std::string& cache_type_v)
      : session(*m.model, options(cache_type_k, cache_type_v)) {}

  // K/V storage types by llama.cpp's names (docs/KVQUANT.md); a bad name raises ValueError.
  static SessionOptions options(const std::string& k, const std::string& v) {
    SessionOptions o;
    o.cache_type_k = kv_cache_type_from_name(k, "cache_type_k");
    o.cache_type_v = kv_cache_type_from_name(v, "cache_type_v");
    return o;
  }

  void prefill(const std::string& text) { session.prefill(text); }

  // Keeps `ratio` of the context pairs. kvzip: KVzip's reconstruction scores and one global
  // threshold; kvpress: kvpress' KVzipPress (4 sinks, bottom-k); kvzip_uniform: the same count per
  // head; random / streaming / knorm: kvpress' query-agnostic baselines with KVzip's pruner.
  double compress(double ratio, const std::string& method) {
    if (!(ratio > 0 && ratio <= 1)) throw InputError("ratio must be in (0, 1]");
    const ModelConfig& c = session.model().config();
    const int64_t n_prefix = session.n_prefix(), n_ctx = session.n_context();
    PruneLevel level = PruneLevel::kPair;
    if (method == "kvzip" || method == "kvzip_uniform") {
      session.score();
      if (method == "kvzip_uniform") level = PruneLevel::kPairUniform;
    } else if (method == "kvpress") {
      CompressorOptions o;
      o.sinks = SinkPolicy::kKvpress;
      session.score(o);
      level = PruneLevel::kKvpress;
    } else if (method == "random") {
      session.set_scores(random_scores(c.n_layers, c.n_kv_heads, n_ctx, 1));
      level = PruneLevel::kPairUniform;
    } else if (method == "streaming") {
      session.set_scores(streaming_scores(c.n_layers, c.n_kv_heads, n_ctx));
      level = PruneLevel::kPairUniform;
    } else if (method == "knorm") {
      session.set_scores(knorm_scores(session.cache(), n_prefix, n_ctx));
      level = PruneLevel::kPairUniform;
    } else {
      throw InputError("unknown method '" + method +
                       "' (kvzip, kvpress, kvzip_uniform, random, streaming, knorm)");
    }
    return session.prune(ratio, level).kept_fraction;
  }

  std::string ask(const std::string& question, int max_tokens, float temperature, uint64_t seed) {
    GenerateOptions o;
    o.max_new_tokens = max_tokens;
    o.temperature = temperature;
    o.seed = seed;
    return session.generate(question, o).text;
  }
};

// kvz::InputError -> ValueError; other engine errors -> RuntimeError (pybind11 maps
// std::exception subclasses it knows; ours derive from std::runtime_error).
void translate(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const InputError& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  }
}

}  // namespace
}  // namespace kvz::py_binding

PYBIND11_MODULE(kvzip_vk, m) {
  using namespace kvz;
  using namespace kvz::py_binding;
  using release = py::call_guard<py::gil_scoped_release>;
  m.doc() = "kvzip-vk: KVzip query-agnostic KV-cache compression on Vulkan compute (and CPU)";
  py::register_exception_translator(&translate);

  m.def(
      "devices",
      [] {
        py::list out;
        for (const DeviceCaps& c : list_devices()) {
          py::dict d;
          d["name"] = c.name;
          d["type"] = c.type;
          d["driver"] = c.driver;
          d["software"] = c.software;
          d["device_local_bytes"] = c.device_local_bytes;
          out.append(d);
        }
        return out;
      },
      "Every Vulkan device the loader reports, then the CPU backend (select one with device=...).");

  py::class_<PyModel>(m, "Model")
      .def(py::init<const std::string&, const std::string&, int>(), py::arg("path"),
           py::arg("device") = "", py::arg("ctx_size") = 0, release(),
           "Loads a GGUF file, safetensors folder, llama2.c .bin or a model name fetched by "
           "tools/fetch_model.sh. device: '' (KVZIP_DEVICE or the best device), 'cpu', an index "
           "or a name substring. ctx_size > 0 lowers the context length.")
      .def_property_readonly("name", [](const PyModel& p) { return p.model->config().name; })
      .def_property_readonly("n_layers",
                             [](const PyModel& p) { return p.model->config().n_layers; })
      .def_property_readonly("max_context",
                             [](const PyModel& p) { return p.model->config().max_context; })
      .def_property_readonly("device", [](const PyModel& p) { return p.device->caps().name; });

  py::class_<PySession>(m, "Session")
      .def(py::init<PyModel&, const std::string&, const std::string&>(), py::arg("model"),
           py::arg("cache_type_k") = "f16", py::arg("cache_type_v") = "f16", py::keep_alive<1, 2>())
      .def("prefill", &PySession::prefill, py::arg("text"), release(),
           "Prefills the context (system prefix + instruction + text) into a fresh KV cache.")
      .def("compress", &PySession::compress, py::arg("ratio") = 0.3, py::arg("method") = "kvzip",
           release(), "Keeps `ratio` of the context's KV pairs; returns the kept fraction.")
      .def("ask", &PySession::ask, py::arg("question"), py::arg("max_tokens") = 64,
           py::arg("temperature") = 0.0f, py::arg("seed") = 0, release(),
           "Answers from the (compressed) cache; the cache is left as it was.")
      .def(
          "save", [](PySession& s, const std::string& path) { s.session.save_cache(path); },
          py::arg("path"), release(), "Writes the cache file (kvzip/cache_file.h).")
      .def(
          "load", [](PySession& s, const std::string& path) { s.session.load_cache(path); },
          py::arg("path"), release(), "Reads a cache file written by save() or `kvzip compress`.")
      .def_property_readonly("n_context", [](PySession& s) { return s.session.n_context(); })
      .def_property_readonly("kept_fraction",
                             [](PySession& s) { return s.session.kept_fraction(); })
      .def_property_readonly("kv_bytes",
                             [](PySession& s) { return s.session.cache().bytes_in_use(); });
}
