// Filtering a RawLog into a Dataset (steps 1-5 of dataset.h) and renumbering the survivors densely.
#include "sampler/dataset.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "sampler/raw_log.h"

namespace r2rec {
namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Token order for dense ids: numeric tokens first, by value (any length); then the rest bytewise.
bool token_less(const std::string& a, const std::string& b) {
  const bool da = all_digits(a), db = all_digits(b);
  if (da != db) return da;
  if (!da) return a < b;
  const size_t za = std::min(a.find_first_not_of('0'), a.size()), zb = std::min(b.find_first_not_of('0'), b.size());
  const size_t la = a.size() - za, lb = b.size() - zb;
  if (la != lb) return la < lb;
  const int c = a.compare(za, la, b, zb, lb);
  return c != 0 ? c < 0 : a < b;
}

// Dense ids for the tokens whose `keep` flag is set, in token order. Returns old index -> new id (-1 = dropped).
std::vector<int32_t> renumber(const std::vector<std::string>& tokens, const std::vector<char>& keep,
                              std::vector<std::string>* kept_tokens) {
  std::vector<int32_t> order;
  for (size_t i = 0; i < tokens.size(); ++i)
    if (keep[i]) order.push_back(static_cast<int32_t>(i));
  std::sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return token_less(tokens[x], tokens[y]); });
  std::vector<int32_t> id(tokens.size(), -1);
  kept_tokens->clear();
  for (size_t d = 0; d < order.size(); ++d) {
    id[order[d]] = static_cast<int32_t>(d);
    kept_tokens->push_back(tokens[order[d]]);
  }
  return id;
}

void require_nonempty(size_t n, const DataConfig& data, const std::string& what) {
  if (n == 0) throw DataError(data.path + ": no interactions left " + what);
}

}  // namespace

Dataset load_dataset(const DataConfig& data, uint64_t seed) {
  RawLog log = read_raw_log(data, seed);
  Dataset ds;
  ds.format = data.format;
  DatasetStats& st = ds.stats;
  st.raw_users = static_cast<int64_t>(log.user_tokens.size());
  st.raw_items = static_cast<int64_t>(log.item_tokens.size());
  st.raw_interactions = static_cast<int64_t>(log.interactions.size());
  st.malformed_lines = log.malformed_lines;
  std::vector<RawInteraction>& xs = log.interactions;
  require_nonempty(xs.size(), data, "after reading (the interaction file holds no valid line)");

  // 1. Ratings.
  if (log.has_ratings && data.min_rating > 0) {
    const size_t before = xs.size();
    xs.erase(std::remove_if(xs.begin(), xs.end(), [&](const RawInteraction& x) { return x.rating < data.min_rating; }),
             xs.end());
    st.dropped_by_rating = static_cast<int64_t>(before - xs.size());
    require_nonempty(xs.size(), data,
                     "after the rating filter (data.min_rating=" + std::to_string(data.min_rating) + ")");
  }

  // 2. Chronology per user: (user, time, line order); order is unique, so the sort is total.
  std::sort(xs.begin(), xs.end(), [](const RawInteraction& a, const RawInteraction& b) {
    if (a.user != b.user) return a.user < b.user;
    if (a.time != b.time) return a.time < b.time;
    return a.order < b.order;
  });

  // 3. De-duplicate (user, item), keeping the earliest: stamp[item] = user + 1 once seen for this user.
  {
    std::vector<int32_t> stamp(log.item_tokens.size(), -1);
    size_t w = 0;
    for (size_t r = 0; r < xs.size(); ++r) {
      if (stamp[xs[r].item] == xs[r].user) continue;
      stamp[xs[r].item] = xs[r].user;
      xs[w++] = xs[r];
    }
    st.duplicates = static_cast<int64_t>(xs.size() - w);
    xs.resize(w);
  }

  // 4. Iterated k-core: one pass counts degrees of live interactions and kills those touching a light node.
  std::vector<char> alive(xs.size(), 1);
  std::vector<int64_t> ucount(log.user_tokens.size()), icount(log.item_tokens.size());
  auto count_live = [&] {
    std::fill(ucount.begin(), ucount.end(), 0);
    std::fill(icount.begin(), icount.end(), 0);
    for (size_t e = 0; e < xs.size(); ++e)
      if (alive[e]) ++ucount[xs[e].user], ++icount[xs[e].item];
  };
  size_t live = xs.size();
  if (data.kcore > 0) {
    while (true) {
      count_live();
      ++st.kcore_rounds;
      bool changed = false;
      for (size_t e = 0; e < xs.size(); ++e) {
        if (alive[e] && (ucount[xs[e].user] < data.kcore || icount[xs[e].item] < data.kcore)) {
          alive[e] = 0;
          --live;
          changed = true;
        }
      }
      if (!changed) break;
    }
    require_nonempty(live, data, "after the k-core filter (data.kcore=" + std::to_string(data.kcore) + ")");
  }

  // 5. Short histories.
  count_live();
  for (size_t e = 0; e < xs.size(); ++e) {
    if (alive[e] && ucount[xs[e].user] < data.min_history) {
      alive[e] = 0;
      --live;
    }
  }
  require_nonempty(
      live, data,
      "after dropping users with fewer than data.min_history=" + std::to_string(data.min_history) + " interactions");

  // Dense ids and sequences.
  count_live();
  std::vector<char> keep_user(ucount.size()), keep_item(icount.size());
  for (size_t u = 0; u < ucount.size(); ++u) keep_user[u] = ucount[u] > 0;
  for (size_t i = 0; i < icount.size(); ++i) keep_item[i] = icount[i] > 0;
  const std::vector<int32_t> user_id = renumber(log.user_tokens, keep_user, &ds.user_tokens);
  const std::vector<int32_t> item_id = renumber(log.item_tokens, keep_item, &ds.item_tokens);

  // xs is grouped by raw user; find each raw user's range, then emit in dense-user order.
  std::vector<int64_t> raw_begin(log.user_tokens.size() + 1, 0);
  for (const RawInteraction& x : xs) ++raw_begin[x.user + 1];
  std::partial_sum(raw_begin.begin(), raw_begin.end(), raw_begin.begin());
  std::vector<int32_t> raw_of_dense(ds.user_tokens.size());
  for (size_t u = 0; u < user_id.size(); ++u)
    if (user_id[u] >= 0) raw_of_dense[user_id[u]] = static_cast<int32_t>(u);
  ds.sequence_offsets.assign(1, 0);
  ds.sequence_items.reserve(live);
  for (int32_t raw : raw_of_dense) {
    for (int64_t e = raw_begin[raw]; e < raw_begin[raw + 1]; ++e)
      if (alive[e]) ds.sequence_items.push_back(item_id[xs[e].item]);
    ds.sequence_offsets.push_back(static_cast<int64_t>(ds.sequence_items.size()));
  }

  ds.item_titles.resize(ds.item_tokens.size());
  for (size_t i = 0; i < ds.item_tokens.size(); ++i) {
    auto it = log.titles.find(ds.item_tokens[i]);
    if (it == log.titles.end()) {
      ++st.items_without_title;
    } else {
      ds.item_titles[i] = it->second;
    }
  }
  st.users = ds.num_users();
  st.items = ds.num_items();
  st.interactions = ds.num_interactions();
  return ds;
}

std::string describe(const DatasetStats& s) {
  std::ostringstream o;
  o << "raw " << s.raw_users << " users / " << s.raw_items << " items / " << s.raw_interactions << " interactions -> "
    << s.users << " / " << s.items << " / " << s.interactions << " (rating-dropped " << s.dropped_by_rating
    << ", duplicates " << s.duplicates << ", k-core rounds " << s.kcore_rounds << ", malformed lines skipped "
    << s.malformed_lines << ", items without title " << s.items_without_title << ")";
  return o.str();
}

}  // namespace r2rec
