// Static files of the web UI served by the API server: content types, caching (long for hashed assets/, revalidated
// for the rest), ETag/304, and the single-page-app fallback to index.html for client routes.
#pragma once

#include <string>

#include "api/http_types.hpp"

namespace ork::api {

// The response to GET/HEAD `r.path` from the directory `root`.
Response serve_static(const std::string& root, const Request& r);

// The web UI's built files when none are configured: <exe>/../share/ork/ui (installed, or the build tree, where the
// UI build writes them), else the source tree's ui/dist; "" when neither holds an index.html.
std::string find_ui_dir();

}  // namespace ork::api
