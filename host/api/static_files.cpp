#include "api/static_files.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/routes.hpp"
#include "api/service.hpp"

namespace ork::api {

namespace fs = std::filesystem;

namespace {

std::string mime_type(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".webmanifest") return "application/manifest+json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".gif") return "image/gif";
  if (ext == ".webp") return "image/webp";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".woff") return "font/woff";
  if (ext == ".ttf") return "font/ttf";
  if (ext == ".otf") return "font/otf";
  if (ext == ".wasm") return "application/wasm";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

// A strong validator from the file's size and modification time.
std::string etag_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return "";
  std::ostringstream s;
  s << '"' << std::hex << st.st_size << '-' << st.st_mtim.tv_sec << '.' << st.st_mtim.tv_nsec << '"';
  return s.str();
}

bool etag_matches(const std::string& header, const std::string& etag) {
  if (header.empty() || etag.empty()) return false;
  if (header == "*") return true;
  size_t pos = 0;
  while (pos < header.size()) {
    size_t comma = header.find(',', pos);
    std::string tag = header.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    tag.erase(0, tag.find_first_not_of(" \t"));
    tag.erase(tag.find_last_not_of(" \t") + 1);
    if (tag.rfind("W/", 0) == 0) tag.erase(0, 2);
    if (tag == etag) return true;
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return false;
}

Response not_found(const std::string& path) {
  return error_response(404, "not_found", "no file " + path, {{"path", path}});
}

}  // namespace

Response serve_static(const std::string& root, const Request& r) {
  std::string rel = url_decode(r.path, false);
  if (rel.find('\0') != std::string::npos || rel.find('\\') != std::string::npos) return not_found(r.path);
  rel.erase(0, rel.find_first_not_of('/') == std::string::npos ? rel.size() : rel.find_first_not_of('/'));
  fs::path relp(rel);
  for (const auto& part : relp)
    if (part == ".." || part == ".") return not_found(r.path);
  fs::path p = fs::path(root) / relp;
  std::error_code ec;
  if (rel.empty() || fs::is_directory(p, ec)) p /= "index.html";
  bool fallback = false;
  if (!fs::is_regular_file(p, ec)) {
    // A client-side route (/runs/abc: no file extension) gets the app's index.html; a missing file stays a 404.
    std::string last = relp.filename().string();
    if (last.find('.') != std::string::npos) return not_found(r.path);
    p = fs::path(root) / "index.html";
    fallback = true;
    if (!fs::is_regular_file(p, ec)) return not_found(r.path);
  }
  bool html = p.extension() == ".html";
  bool hashed = !fallback && rel.rfind("assets/", 0) == 0;
  Response res;
  res.headers.emplace_back("Cache-Control", hashed ? "public, max-age=31536000, immutable" : "no-cache");
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (html) {
    res.headers.emplace_back("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                             "object-src 'none'; base-uri 'self'; frame-ancestors 'none'");
    res.headers.emplace_back("Referrer-Policy", "no-referrer");
  }
  std::string etag = etag_of(p);
  if (!etag.empty()) res.headers.emplace_back("ETag", etag);
  if (etag_matches(r.if_none_match, etag)) {
    res.status = 304;
    res.content_type.clear();
    return res;
  }
  std::ifstream in(p, std::ios::binary);
  if (!in) return not_found(r.path);
  std::ostringstream ss;
  ss << in.rdbuf();
  res.content_type = mime_type(p);
  res.body = ss.str();
  return res;
}

std::string find_ui_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path dir = exe.parent_path().parent_path() / "share" / "ork" / "ui";
    if (fs::is_regular_file(dir / "index.html", ec)) return dir.string();
  }
  fs::path src = fs::path(ORK_SOURCE_DIR) / "ui" / "dist";
  if (fs::is_regular_file(src / "index.html", ec)) return src.string();
  return "";
}

}  // namespace ork::api
