// The physical floor for a trivial task: posix_spawn of /bin/true, N times sequentially and with 2 in flight.
// Built by bench/peers.sh (g++ -O2 -std=c++20 bench/spawn_floor.cpp). Prints one line per mode:
//   sequential <tasks/s>
//   parallel2 <tasks/s>
// Usage: spawn_floor [N]   (default 1000)
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

extern char** environ;

namespace {

pid_t spawn_true() {
  static char arg0[] = "/bin/true";
  char* argv[] = {arg0, nullptr};
  pid_t pid = 0;
  if (int rc = ::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ); rc != 0) {
    std::fprintf(stderr, "spawn_floor: posix_spawn: %d\n", rc);
    std::exit(1);
  }
  return pid;
}

void reap(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "spawn_floor: /bin/true did not exit 0\n");
    std::exit(1);
  }
}

// Runs n spawns with at most `in_flight` children alive; returns tasks per second.
double run(int n, int in_flight) {
  auto start = std::chrono::steady_clock::now();
  int started = 0, alive = 0;
  while (started < n || alive > 0) {
    while (started < n && alive < in_flight) {
      spawn_true();
      ++started;
      ++alive;
    }
    reap(-1);
    --alive;
  }
  std::chrono::duration<double> secs = std::chrono::steady_clock::now() - start;
  return n / secs.count();
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  if (n <= 0) {
    std::fprintf(stderr, "usage: spawn_floor [N > 0]\n");
    return 2;
  }
  std::printf("sequential %.1f\n", run(n, 1));
  std::printf("parallel2 %.1f\n", run(n, 2));
  return 0;
}
