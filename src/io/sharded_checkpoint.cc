// ShardedCheckpoint: one checkpoint spread over model.safetensors or the
// shards named by model.safetensors.index.json.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "io/file_util.h"
#include "mixpeft/error.h"
#include "mixpeft/safetensors.h"

namespace mixpeft::io {

using detail::join_path;
using detail::quote;

namespace {

constexpr const char* kSingleName = "model.safetensors";
constexpr const char* kIndexName = "model.safetensors.index.json";

enum class PathKind { kMissing, kFile, kDir, kOther };

PathKind path_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return PathKind::kMissing;
    fail(ErrorKind::kIO, path, ": cannot stat: ", std::strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return PathKind::kFile;
  if (S_ISDIR(st.st_mode)) return PathKind::kDir;
  return PathKind::kOther;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Parses the index JSON, rejecting duplicate keys (nlohmann would silently
// keep the last one, hiding a tensor listed twice).
nlohmann::json parse_index(const std::string& index_path, const std::string& text) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string top_key;
  json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end: keys.pop_back(); break;
      case json::parse_event_t::key: {
        const auto& k = parsed.get_ref<const std::string&>();
        if (keys.size() == 1) top_key = k;
        if (!keys.back().insert(k).second) {
          if (keys.size() == 2 && top_key == "weight_map") {
            fail(ErrorKind::kCorrupt, index_path, ": tensor ", quote(k), " is listed twice in weight_map");
          }
          fail(ErrorKind::kCorrupt, index_path, ": key ", quote(k), " appears twice in one object");
        }
        break;
      }
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text, check);
  } catch (const json::exception& e) {
    fail(ErrorKind::kCorrupt, index_path, ": not valid JSON: ", e.what());
  }
}

// A shard name must be a plain file name in the checkpoint folder.
void check_shard_name(const std::string& index_path, const std::string& tensor, const std::string& shard) {
  bool plain = !shard.empty() && shard != "." && shard != ".." &&
               shard.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
  MIXPEFT_CHECK(plain, ErrorKind::kCorrupt, index_path, ": tensor ", quote(tensor), ": shard ", quote(shard),
                " is not a plain file name inside the checkpoint folder");
}

}  // namespace

ShardedCheckpoint ShardedCheckpoint::open(const std::string& dir) {
  ShardedCheckpoint ckpt;
  ckpt.location_ = dir;
  PathKind kind = path_kind(dir);
  MIXPEFT_CHECK(kind != PathKind::kMissing, ErrorKind::kNotFound, dir, ": no such file or folder");
  MIXPEFT_CHECK(kind != PathKind::kOther, ErrorKind::kIO, dir, ": neither a file nor a folder");

  std::string index_path;
  std::string folder = dir;
  if (kind == PathKind::kFile) {
    if (ends_with(dir, ".index.json")) {
      index_path = dir;
      folder = detail::dir_name(dir);
    }
  } else {
    // Like transformers' from_pretrained, a single model.safetensors wins
    // over an index when both are present.
    std::string single = join_path(dir, kSingleName);
    std::string index = join_path(dir, kIndexName);
    if (path_kind(single) == PathKind::kFile) {
      kind = PathKind::kFile;
      ckpt.location_ = single;
    } else if (path_kind(index) == PathKind::kFile) {
      index_path = index;
    } else {
      fail(ErrorKind::kNotFound, dir, ": no checkpoint here (looked for ", kSingleName, " and ", kIndexName, ")");
    }
  }

  if (index_path.empty()) {  // one .safetensors file
    ckpt.files_.push_back(SafetensorsFile::open(ckpt.location_));
    for (const TensorInfo& t : ckpt.files_[0]->tensors()) ckpt.owner_.emplace(t.name, 0);
    return ckpt;
  }

  nlohmann::json index = parse_index(index_path, read_file(index_path));
  MIXPEFT_CHECK(index.is_object(), ErrorKind::kCorrupt, index_path, ": must be a JSON object");
  auto wm = index.find("weight_map");
  MIXPEFT_CHECK(wm != index.end(), ErrorKind::kCorrupt, index_path, ": has no \"weight_map\"");
  MIXPEFT_CHECK(wm->is_object(), ErrorKind::kCorrupt, index_path, ": \"weight_map\" must be an object");

  std::map<std::string, std::size_t> shard_index;  // shard file name -> files_ index
  std::vector<std::string> shard_names;
  for (const auto& [tensor, shard] : wm->items()) {
    MIXPEFT_CHECK(shard.is_string(), ErrorKind::kCorrupt, index_path, ": weight_map: tensor ", quote(tensor),
                  ": shard must be a file name string, got ", shard.type_name());
    const std::string& name = shard.get_ref<const std::string&>();
    check_shard_name(index_path, tensor, name);
    auto [it, added] = shard_index.emplace(name, ckpt.files_.size());
    if (added) {
      std::string shard_path = join_path(folder, name);
      try {
        ckpt.files_.push_back(SafetensorsFile::open(shard_path));
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kNotFound) throw;
        fail(ErrorKind::kNotFound, index_path, ": tensor ", quote(tensor), ": shard file ", shard_path,
             " does not exist");
      }
      shard_names.push_back(name);
    }
    const SafetensorsFile& file = *ckpt.files_[it->second];
    MIXPEFT_CHECK(file.find(tensor) != nullptr, ErrorKind::kCorrupt, index_path, ": tensor ", quote(tensor),
                  " is mapped to shard ", quote(name), " but that file has no such tensor");
    ckpt.owner_.emplace(tensor, it->second);
  }
  // Every tensor a shard holds must be mapped to that shard: otherwise two
  // shards hold it, or the index hides it (transformers would still load it).
  for (std::size_t i = 0; i < ckpt.files_.size(); ++i) {
    for (const TensorInfo& t : ckpt.files_[i]->tensors()) {
      auto it = ckpt.owner_.find(t.name);
      MIXPEFT_CHECK(it != ckpt.owner_.end(), ErrorKind::kCorrupt, index_path, ": tensor ", quote(t.name),
                    " is in shard ", quote(shard_names[i]), " but not in weight_map");
      MIXPEFT_CHECK(it->second == i, ErrorKind::kCorrupt, index_path, ": tensor ", quote(t.name),
                    " is in two shards: ", quote(shard_names[i]), " and ", quote(shard_names[it->second]),
                    " (weight_map names the latter)");
    }
  }
  return ckpt;
}

std::vector<std::string> ShardedCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(owner_.size());
  for (const auto& [name, file] : owner_) out.push_back(name);
  return out;
}

bool ShardedCheckpoint::contains(const std::string& name) const { return owner_.count(name) > 0; }

std::pair<const SafetensorsFile*, const TensorInfo*> ShardedCheckpoint::locate(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) {
    fail(ErrorKind::kNotFound, location_, ": checkpoint has no tensor ", quote(name), " (it has ",
         owner_.size(), " tensors)");
  }
  const SafetensorsFile* file = files_[it->second].get();
  return {file, &file->get(name)};
}

}  // namespace mixpeft::io
