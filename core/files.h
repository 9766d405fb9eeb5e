// Small file helpers shared by every writer: a write goes to "<path>.tmp.<pid>", is flushed and fsync'd,
// then renamed over <path>, so a crash mid-write leaves the previous file whole.
#pragma once

#include <string>

namespace r2rec {

// Writes `contents` to `path` atomically. Throws RuntimeFailure naming the path on any I/O error.
void write_file_atomic(const std::string& path, const std::string& contents);

// Reads a whole file. Throws DataError naming the path when it cannot be read.
std::string read_file(const std::string& path);

// A temporary sibling of `path` unique to this process: "<path>.tmp.<pid>".
std::string temp_path_for(const std::string& path);

}  // namespace r2rec
