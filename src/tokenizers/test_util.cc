#include "tokenizers/test_util.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace mixpeft::tok::testing {

namespace fs = std::filesystem;

std::string fixture_dir(const std::string& name) {
  return std::string(MIXPEFT_TEST_DATA) + "/fixtures/tokenizers/" + name;
}

std::string deps_dir(const std::string& name) {
  return std::string(MIXPEFT_DEPS_DIR) + "/tokenizers/" + name;
}

std::vector<Case> read_cases(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    Case c;
    c.text = j.at("text").get<std::string>();
    c.ids = j.at("ids").get<std::vector<TokenId>>();
    if (j.contains("tokens")) {
      c.tokens = j["tokens"].get<std::vector<std::string>>();
      c.has_tokens = true;
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string make_temp_dir(const std::string& tag) {
  static int counter = 0;
  auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  fs::path p = fs::temp_directory_path() /
               ("mixpeft_tok_" + tag + "_" + std::to_string(stamp) + "_" + std::to_string(++counter));
  fs::create_directories(p);
  return p.string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

}  // namespace mixpeft::tok::testing
