// ork-object-local: an ObjectStore keeping each object as one file under a root directory.
// Writes go to a temp file in the target directory and are renamed (or linked, for if_none_match) into place, so a
// reader sees the old or the new object, never part of one. Keys are checked so none can escape the root.
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <ork/plugin.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "unique_fd.hpp"

#ifndef ORK_PLUGIN_VERSION
#define ORK_PLUGIN_VERSION "0.0.0"
#endif

namespace {

namespace fs = std::filesystem;
using ork::json;

constexpr std::string_view kTempPrefix = ".ork-tmp-";

using ork::common::UniqueFd;

// Unlinks a temp file (a name relative to `dir`, or a path with AT_FDCWD) unless it was committed.
class TempFileGuard {
 public:
  TempFileGuard(int dir, std::string name) : dir_(dir), name_(std::move(name)) {}
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  ~TempFileGuard() {
    if (!name_.empty()) ::unlinkat(dir_, name_.c_str(), 0);
  }
  void release() { name_.clear(); }

 private:
  int dir_;
  std::string name_;
};

// Splits "a/b/c" into ("a/b", "c"); ("", "c") for a top-level key.
std::pair<std::string, std::string> split_key(const std::string& key) {
  size_t slash = key.rfind('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

[[noreturn]] void throw_errno(const std::string& what, int err) {
  if (err == ENAMETOOLONG) ork::throw_invalid(what + ": " + std::strerror(err));
  if (err == EAGAIN || err == EINTR || err == EBUSY) ork::throw_unavailable(what + ": " + std::strerror(err));
  throw std::runtime_error(what + ": " + std::strerror(err));
}

bool is_temp_name(std::string_view name) {
  return name.substr(0, kTempPrefix.size()) == kTempPrefix;
}

// Splits on '/', refusing anything that is not a plain relative path of named segments. When allow_partial_tail is
// set (list prefixes) the last segment may be empty.
void check_segments(std::string_view key, bool allow_partial_tail, const char* what) {
  auto bad = [&](const std::string& why) {
    ork::throw_invalid(std::string(what) + " '" + std::string(key) + "' " + why);
  };
  if (key.find('\0') != std::string_view::npos) bad("contains NUL");
  if (key.find('\\') != std::string_view::npos) bad("contains a backslash");
  if (!key.empty() && key.front() == '/') bad("is absolute");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    bool last = end == std::string_view::npos;
    std::string_view seg = key.substr(start, last ? std::string_view::npos : end - start);
    if (seg.empty() && !(last && allow_partial_tail)) bad("has an empty segment");
    if (seg == "..") bad("has a '..' segment");
    if (seg == "." && !(last && allow_partial_tail)) bad("has a '.' segment");
    if (is_temp_name(seg)) bad("uses the reserved name prefix " + std::string(kTempPrefix));
    if (last) break;
    start = end + 1;
  }
}

// True when `p` is `root` or lies below it, comparing whole components.
bool within(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), re = root.end();
  auto q = p.begin(), qe = p.end();
  for (; r != re; ++r, ++q) {
    if (r->empty() && std::next(r) == re) break;  // trailing separator on root
    if (q == qe || *q != *r) return false;
  }
  return true;
}

class LocalObjectStore : public ork::ObjectStore {
 public:
  // fork_safe: no threads and no per-process state, so an instance made before fork() works in the child (the
  // resident worker shares one across its forked attempts).
  static constexpr const char* kInfo =
      R"({"description": "Objects as files under a local folder", "capabilities": ["if_none_match", "streaming", "fork_safe"]})";

  LocalObjectStore(const json& cfg, ork::HostServices host) : host_(host) {
    if (!cfg.is_object() || !cfg.contains("root") || !cfg["root"].is_string() || cfg["root"].get<std::string>().empty())
      ork::throw_invalid("object-local: config needs \"root\": \"/path\"");
    if (cfg.contains("fsync") && !cfg["fsync"].is_null()) fsync_ = cfg["fsync"].get<bool>();
    fs::path root = cfg["root"].get<std::string>();
    std::error_code ec;
    fs::create_directories(root, ec);
    if (ec) ork::throw_invalid("object-local: cannot create root " + root.string() + ": " + ec.message());
    root_ = fs::canonical(root, ec);
    if (ec) ork::throw_invalid("object-local: cannot resolve root " + root.string() + ": " + ec.message());
    if (!fs::is_directory(root_)) ork::throw_invalid("object-local: root " + root_.string() + " is not a directory");
    root_fd_ = UniqueFd(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd_) ork::throw_invalid("object-local: cannot open root " + root_.string() + ": " + std::strerror(errno));
    uint64_t r = 0;
    if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) r = static_cast<uint64_t>(::time(nullptr));
    temp_tag_ = std::to_string(r);
    host_.log(ORK_LOG_DEBUG, "object-local: root " + root_.string() + (fsync_ ? " (fsync)" : ""));
  }

  std::optional<std::string> get(const std::string& key) override {
    struct stat st {};
    UniqueFd fd = open_object(key, st);
    if (!fd) return std::nullopt;
    std::string data;
    data.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    for (;;) {
      if (got == data.size()) data.resize(std::max<size_t>(data.size() * 2, 4096));  // grew since fstat
      ssize_t n = ::read(fd.get(), data.data() + got, data.size() - got);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("object-local: read " + key, errno);
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    data.resize(got);
    return data;
  }

  void put(const std::string& key, std::string_view data, const json& opts) override {
    bool if_none_match = opts.is_object() && opts.contains("if_none_match") && opts["if_none_match"].is_boolean() &&
                         opts["if_none_match"].get<bool>();
    if (key.empty()) ork::throw_invalid("object-local: empty key");
    check_segments(key, false, "key");
    write_object(key, if_none_match, [&](const UniqueFd& fd) { write_all(fd, data, key); });
  }

  void put_file(const std::string& key, const std::string& path, const json& opts) override {
    bool if_none_match = opts.is_object() && opts.contains("if_none_match") && opts["if_none_match"].is_boolean() &&
                         opts["if_none_match"].get<bool>();
    if (key.empty()) ork::throw_invalid("object-local: empty key");
    check_segments(key, false, "key");
    UniqueFd src(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!src) ork::throw_invalid("object-local: put_file: cannot open " + path + ": " + std::strerror(errno));
    write_object(key, if_none_match, [&](const UniqueFd& fd) { copy_fd(src.get(), fd.get(), key); });
  }

  bool get_file(const std::string& key, const std::string& path) override {
    struct stat st {};
    UniqueFd fd = open_object(key, st);
    if (!fd) return false;
    fs::path target(path);
    fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::string tmp = (dir / temp_name()).string();
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!out) ork::throw_invalid("object-local: get_file: cannot create " + tmp + ": " + std::strerror(errno));
    TempFileGuard guard(AT_FDCWD, tmp);
    copy_fd(fd.get(), out.get(), key);
    if (out.close() != 0) throw_errno("object-local: close " + tmp, errno);
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("object-local: rename into " + path, errno);
    guard.release();
    return true;
  }

 private:
  // Opens the object `key` for reading; an empty fd when it does not exist (or is a "directory" of keys).
  UniqueFd open_object(const std::string& key, struct stat& st) {
    if (key.empty()) ork::throw_invalid("object-local: empty key");
    check_segments(key, false, "key");
    UniqueFd fd(open_beneath(key, O_RDONLY | O_CLOEXEC));
    if (!fd && needs_slow_path(errno)) {
      fs::path p = checked_path(key);
      fd = UniqueFd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    }
    if (!fd) {
      if (errno == ENOENT || errno == ENOTDIR) return UniqueFd();
      throw_errno("object-local: open " + key, errno);
    }
    if (::fstat(fd.get(), &st) != 0) throw_errno("object-local: stat " + key, errno);
    if (!S_ISREG(st.st_mode)) return UniqueFd();  // a "directory" of keys is not an object
    return fd;
  }

  // Copies everything from `in` (at its offset) to `out`: copy_file_range in the kernel, read/write where refused.
  static void copy_fd(int in, int out, const std::string& key) {
    bool kernel = true;
    std::vector<char> buf;
    for (;;) {
      if (kernel) {
        ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, size_t{1} << 30, 0);
        if (n > 0) continue;
        if (n == 0) return;
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP && errno != EPERM)
          throw_errno("object-local: copy " + key, errno);
        kernel = false;
        buf.resize(1 << 20);
      }
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("object-local: read for " + key, errno);
      }
      if (n == 0) return;
      size_t done = 0;
      while (done < static_cast<size_t>(n)) {
        ssize_t w = ::write(out, buf.data() + done, static_cast<size_t>(n) - done);
        if (w < 0) {
          if (errno == EINTR) continue;
          throw_errno("object-local: write " + key, errno);
        }
        done += static_cast<size_t>(w);
      }
    }
  }

  // Writes a temp file in the key's folder with `fill`, then publishes it as the key (atomically; exclusively
  // when if_none_match).
  template <class Fill>
  void write_object(const std::string& key, bool if_none_match, Fill&& fill) {
    auto [dir_key, name] = split_key(key);
    UniqueFd dir = open_dir(dir_key, key);
    auto [tmp, fd] = create_temp(dir.get(), key);
    TempFileGuard guard(dir.get(), tmp);
    fill(fd);
    if (fsync_ && ::fsync(fd.get()) != 0) throw_errno("object-local: fsync " + key, errno);
    if (fd.close() != 0) throw_errno("object-local: close " + key, errno);

    if (if_none_match) {
      commit_exclusive(dir.get(), tmp, name, key);
    } else if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
      int err = errno;
      if (err == EISDIR || err == ENOTEMPTY || err == EEXIST)
        ork::throw_conflict("object-local: '" + key + "' is a prefix of other keys, not an object");
      throw_errno("object-local: rename into " + key, err);
    } else {
      guard.release();
    }
    if (fsync_) sync_dir(dir.get());
  }

 public:
  void del(const std::string& key) override {
    if (key.empty()) ork::throw_invalid("object-local: empty key");
    check_segments(key, false, "key");
    auto [dir_key, name] = split_key(key);
    if (UniqueFd dir(dir_key.empty() ? ::dup(root_fd_.get()) : open_beneath(dir_key, O_PATH | O_DIRECTORY | O_CLOEXEC));
        dir || !needs_slow_path(errno)) {
      if (!dir) {
        if (errno == ENOENT || errno == ENOTDIR) return;
        throw_errno("object-local: open the folder of " + key, errno);
      }
      if (::unlinkat(dir.get(), name.c_str(), 0) != 0) {
        int err = errno;
        if (err == ENOENT || err == ENOTDIR || err == EISDIR) return;
        throw_errno("object-local: unlink " + key, err);
      }
      if (fsync_) sync_dir(dir.get());
      return;
    }
    fs::path p = root_ / fs::path(key);
    // Only the parent must stay inside the root: unlink removes a symlink itself, never its target.
    if (!within(root_, fs::weakly_canonical(p.parent_path())))
      ork::throw_invalid("object-local: key '" + key + "' resolves outside the root");
    if (::unlink(p.c_str()) != 0) {
      int err = errno;
      if (err == ENOENT || err == ENOTDIR || err == EISDIR) return;
      throw_errno("object-local: unlink " + key, err);
    }
    if (fsync_) {
      UniqueFd d(::open(p.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (d) sync_dir(d.get());
    }
  }

  std::vector<std::string> list(const std::string& prefix) override {
    check_segments(prefix, true, "prefix");
    size_t slash = prefix.rfind('/');
    std::string base = slash == std::string::npos ? std::string() : prefix.substr(0, slash + 1);
    fs::path start = base.empty() ? root_ : root_ / fs::path(base.substr(0, base.size() - 1));
    if (!within(root_, fs::weakly_canonical(start)))
      ork::throw_invalid("object-local: prefix '" + prefix + "' resolves outside the root");
    std::vector<std::string> keys;
    walk(start, base, prefix, keys);
    std::sort(keys.begin(), keys.end());
    return keys;
  }

 private:
  // root/key after validating the key and checking that it resolves (through any symlinks) inside the root.
  fs::path checked_path(const std::string& key) const {
    if (key.empty()) ork::throw_invalid("object-local: empty key");
    check_segments(key, false, "key");
    fs::path p = root_ / fs::path(key);
    if (!within(root_, fs::weakly_canonical(p)))
      ork::throw_invalid("object-local: key '" + key + "' resolves outside the root");
    return p;
  }

  // openat2(root, rel, RESOLVE_BENEATH): one syscall that also proves the path stays inside the root; -1 with errno.
  int open_beneath(const std::string& rel, int flags) const {
    open_how how{};
    how.flags = static_cast<uint64_t>(flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd;
    do {
      fd = ::syscall(SYS_openat2, root_fd_.get(), rel.c_str(), &how, sizeof how);
    } while (fd < 0 && errno == EAGAIN);
    return static_cast<int>(fd);
  }

  // Errors after which the path checks fall back to resolving the path in user space: no openat2 (old kernels,
  // seccomp), or a symlink openat2 will not follow beneath the root (absolute, or through "..").
  static bool needs_slow_path(int err) { return err == ENOSYS || err == EXDEV || err == ELOOP || err == EPERM; }

  // The folder of a key (created when missing), as an O_PATH descriptor checked to lie inside the root.
  UniqueFd open_dir(const std::string& dir_key, const std::string& key) {
    if (dir_key.empty()) return UniqueFd(::dup(root_fd_.get()));
    std::error_code ec;
    UniqueFd dir(open_beneath(dir_key, O_PATH | O_DIRECTORY | O_CLOEXEC));
    int err = dir ? 0 : errno;
    if (err && needs_slow_path(err) && !within(root_, fs::weakly_canonical(root_ / dir_key)))
      ork::throw_invalid("object-local: key '" + key + "' resolves outside the root");
    if (err == ENOENT || needs_slow_path(err)) {
      fs::create_directories(root_ / dir_key, ec);
      if (ec) {
        if (ec == std::errc::not_a_directory || ec == std::errc::file_exists)
          ork::throw_conflict("object-local: a prefix of '" + key + "' is an existing object");
        throw_errno("object-local: mkdir for " + key, ec.value());
      }
      dir = UniqueFd(open_beneath(dir_key, O_PATH | O_DIRECTORY | O_CLOEXEC));
      err = dir ? 0 : errno;
    }
    if (dir) return dir;
    if (err == ENOTDIR) ork::throw_conflict("object-local: a prefix of '" + key + "' is an existing object");
    if (!needs_slow_path(err)) throw_errno("object-local: open the folder of " + key, err);
    // Re-check after resolving: a symlink swap must not move the write outside the root.
    fs::path real_dir = fs::canonical(root_ / dir_key, ec);
    if (ec || !within(root_, real_dir)) ork::throw_invalid("object-local: key '" + key + "' resolves outside the root");
    dir = UniqueFd(::open(real_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) throw_errno("object-local: open the folder of " + key, errno);
    return dir;
  }

  std::pair<std::string, UniqueFd> create_temp(int dir, const std::string& key) {
    for (int i = 0; i < 100; ++i) {
      std::string tmp = temp_name();
      int fd = ::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) return {tmp, UniqueFd(fd)};
      if (errno != EEXIST) throw_errno("object-local: create temp file for " + key, errno);
    }
    throw std::runtime_error("object-local: cannot pick a temp file name for " + key);
  }

  static void write_all(const UniqueFd& fd, std::string_view data, const std::string& key) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno("object-local: write " + key, errno);
      }
      done += static_cast<size_t>(n);
    }
  }

  // Publishes tmp as name only if name does not exist: link() fails with EEXIST for every writer but one.
  static void commit_exclusive(int dir, const std::string& tmp, const std::string& name, const std::string& key) {
    if (::linkat(dir, tmp.c_str(), dir, name.c_str(), 0) == 0) return;  // the guard unlinks the temp name
    int err = errno;
    if (err == EEXIST) ork::throw_conflict("object-local: '" + key + "' already exists");
    if (err == EPERM || err == EOPNOTSUPP || err == ENOSYS || err == EMLINK) {
      // Filesystems without hard links: an exclusive rename is just as atomic.
      if (::renameat2(dir, tmp.c_str(), dir, name.c_str(), RENAME_NOREPLACE) == 0) return;
      err = errno;
      if (err == EEXIST) ork::throw_conflict("object-local: '" + key + "' already exists");
    }
    throw_errno("object-local: publish " + key, err);
  }

  static void sync_dir(int dir) {
    UniqueFd fd(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd) ::fsync(fd.get());
  }

  // Collects keys under `dir` (whose key prefix is `rel`, "" or ending in '/') that start with `prefix`.
  void walk(const fs::path& dir, const std::string& rel, const std::string& prefix, std::vector<std::string>& keys) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec), end;
    if (ec) return;  // missing (or not a directory): nothing under it
    for (; it != end; it.increment(ec)) {
      if (ec) return;
      std::string name = it->path().filename().string();
      if (is_temp_name(name)) continue;
      std::string key = rel + name;
      fs::file_status st = it->symlink_status(ec);
      if (ec) continue;  // removed meanwhile
      if (fs::is_directory(st)) {
        std::string sub = key + "/";
        if (sub.starts_with(prefix) || prefix.starts_with(sub)) walk(it->path(), sub, prefix, keys);
      } else if (key.starts_with(prefix)) {
        if (fs::is_regular_file(st)) {
          keys.push_back(std::move(key));
        } else if (fs::is_symlink(st)) {
          // A symlinked file counts only when it resolves to a regular file inside the root (as get() allows).
          fs::path target = fs::canonical(it->path(), ec);
          if (!ec && within(root_, target) && fs::is_regular_file(target, ec)) keys.push_back(std::move(key));
        }
      }
    }
  }

  // Unique per process and call: the pid is read at each call, as a fork-safe instance is shared by forked workers.
  std::string temp_name() {
    return std::string(kTempPrefix) + std::to_string(::getpid()) + "-" + temp_tag_ + "-" +
           std::to_string(counter_.fetch_add(1));
  }

  ork::HostServices host_;
  fs::path root_;
  UniqueFd root_fd_;  // O_PATH: the anchor of every openat2 lookup
  bool fsync_ = false;
  std::string temp_tag_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace

ORK_OBJECT_PLUGIN(LocalObjectStore, "local", ORK_PLUGIN_VERSION)
