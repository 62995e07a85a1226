// lightkit_infer: run a TorchScript model exported with lk.export.to_torchscript.
//
// Usage: lightkit_infer MODEL.pt SHAPE < values
//   SHAPE is the input shape with commas, batch first (for example 2,8 or 1,1,8,8); the input
//   values (row-major, whitespace-separated) are read from standard input. Prints one output
//   row per sample, values separated by spaces.
#include <torch/script.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char* argv[]) {
  if (argc != 3) {
    std::cerr << "usage: lightkit_infer MODEL.pt SHAPE < values   (SHAPE like 2,8)\n";
    return 2;
  }
  std::vector<int64_t> shape;
  std::stringstream dims(argv[2]);
  for (std::string dim; std::getline(dims, dim, ',');) {
    try {
      shape.push_back(std::stoll(dim));
    } catch (const std::exception&) {
      std::cerr << "lightkit_infer: SHAPE must be integers separated by commas, got '" << argv[2]
                << "'\n";
      return 2;
    }
  }
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  std::vector<float> values;
  for (float v; std::cin >> v;) values.push_back(v);
  if (static_cast<int64_t>(values.size()) != count) {
    std::cerr << "lightkit_infer: shape " << argv[2] << " needs " << count << " values, got "
              << values.size() << "\n";
    return 2;
  }

  torch::jit::script::Module model;
  try {
    model = torch::jit::load(argv[1]);
  } catch (const c10::Error& e) {
    std::cerr << "lightkit_infer: cannot load '" << argv[1] << "': " << e.what_without_backtrace()
              << "\n";
    return 1;
  }
  model.eval();
  torch::NoGradGuard no_grad;

  torch::Tensor input = torch::from_blob(values.data(), shape, torch::kFloat32).clone();
  torch::Tensor output = model.forward({input}).toTensor().contiguous().to(torch::kFloat32);
  output = output.reshape({output.size(0), -1});
  std::cout.precision(9);
  for (int64_t i = 0; i < output.size(0); ++i) {
    for (int64_t j = 0; j < output.size(1); ++j) {
      std::cout << (j ? " " : "") << output[i][j].item<float>();
    }
    std::cout << "\n";
  }
  return 0;
}
