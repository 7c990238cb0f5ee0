// "Did you mean" hints for misspelt names (workflow fields, task and type names, dbt models): the candidate closest
// to a word by edit distance. Header-only; not part of the C ABI.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ork {

// The Levenshtein distance between a and b.
inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The first candidate closest to `word` at an edit distance below `limit`, or "". The default limit, min(3,
// |word| / 2 + 1), keeps hints for short words sensible ("zz" does not suggest "a").
template <class Names>
std::string closest_name(std::string_view word, const Names& candidates, size_t limit = 0) {
  size_t best = limit ? limit : std::min<size_t>(3, word.size() / 2 + 1);
  std::string pick;
  for (const auto& c : candidates)
    if (size_t d = edit_distance(word, c); d < best) {
      best = d;
      pick = std::string(c);
    }
  return pick;
}

// " (did you mean 'x'?)" for closest_name(word, candidates, limit), else "".
template <class Names>
std::string did_you_mean(std::string_view word, const Names& candidates, size_t limit = 0) {
  std::string pick = closest_name(word, candidates, limit);
  return pick.empty() ? "" : " (did you mean '" + pick + "'?)";
}

}  // namespace ork
