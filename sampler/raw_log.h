// The raw interaction log: what a dataset's files say, before any filtering (dataset.h filters it).
//
// Formats (data.format), all read from the folder data.path:
//   ml-100k         u.data  "user \t item \t rating \t unix_time" (no header); titles: u.item, ISO-8859-1,
//                   '|'-separated, field 2 (converted to UTF-8 here).
//   lastfm-hetrec   user_artists.dat "userID \t artistID \t weight" (header; weight is a play count, not a
//                   rating). No timestamps: each (user, artist) gets the sort key mix(seed, user, artist), so each
//                   user's artists are in a seeded random order (a per-user shuffle that does not depend on the
//                   file's line order). Names: artists.dat "id \t name \t url \t pictureURL" (header).
//   recbole         <prefix>.inter with a header of "name:type" fields in any order: user_id, item_id required,
//                   rating and timestamp optional (without timestamp, line order is the chronology);
//                   titles: <prefix>.item fields item_id and data.title_field. prefix "" = the folder's name.
//   recbole-llmrank <prefix>.test.inter "user_id:token item_id_list:token_seq item_id:token": item_id_list +
//                   [item_id] is the user's full chronological sequence; titles: <prefix>.item as above.
//                   prefix "" = the stem of the folder's only *.item file.
// Lines end in LF or CRLF; blank lines are ignored. A malformed line throws DataError("<file>:<line>: <what>")
// or, with data.skip_malformed, is counted and skipped.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.h"

namespace r2rec {

struct RawInteraction {
  int32_t user = 0;   // index into RawLog::user_tokens
  int32_t item = 0;   // index into RawLog::item_tokens
  double time = 0;    // timestamp or substitute sort key (see above)
  int64_t order = 0;  // line order (and position within a line for llmrank): breaks time ties
  float rating = 0;   // only meaningful when RawLog::has_ratings
};

struct RawLog {
  std::vector<std::string> user_tokens;  // in order of first appearance
  std::vector<std::string> item_tokens;  // in order of first appearance (interactions only)
  std::vector<RawInteraction> interactions;
  bool has_ratings = false;
  std::unordered_map<std::string, std::string> titles;  // item token -> UTF-8 title
  int64_t malformed_lines = 0;
};

// Reads the files of data.format from data.path. Throws DataError / ConfigError as described above.
RawLog read_raw_log(const DataConfig& data, uint64_t seed);

// ISO-8859-1 (Latin-1) bytes -> UTF-8 (each byte >= 0x80 becomes two bytes): ML-100K's titles.
std::string latin1_to_utf8(const std::string& latin1);

}  // namespace r2rec
