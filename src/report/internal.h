// Private helpers of src/report.
#pragma once

#include <string>

namespace mixpeft::report::detail {

// Characters on screen: UTF-8 code points (continuation bytes not counted).
size_t display_width(const std::string& s);
// "0.8123", "-1", "1e-4", "12.5%", "91.2 ± 0.4", "1.2 MB": what format_table right-aligns.
bool looks_numeric(const std::string& s);
// `s` with & < > " ' replaced by XML entities.
std::string xml_escape(const std::string& s);
// nlohmann's parse_error what() without "[json.exception...] parse error at line L, column C: ".
std::string json_error_description(const std::string& what);

}  // namespace mixpeft::report::detail
