// Tests that talk to a server over HTTP: one request, its status and body
// (status -1 when no answer came). Torch-free.
#pragma once

#include <httplib.h>

#include <string>

#include <nlohmann/json.hpp>

namespace mixpeft::testing {

struct HttpReply {
  int status = -1;
  nlohmann::json body;  // discarded (not an object) when the body is not JSON
  std::string text;
};

// method: GET, DELETE or POST (with a JSON body); token: a bearer token or "".
inline HttpReply http_call(httplib::Client& client, const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& token = "") {
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  httplib::Result r = method == "GET"      ? client.Get(path.c_str(), headers)
                      : method == "DELETE" ? client.Delete(path.c_str(), headers)
                                           : client.Post(path.c_str(), headers, body, "application/json");
  HttpReply out;
  if (!r) return out;
  out.status = r->status;
  out.text = r->body;
  out.body = nlohmann::json::parse(r->body, nullptr, false);
  return out;
}

}  // namespace mixpeft::testing
