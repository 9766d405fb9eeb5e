#include "core/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace r2rec {

std::string temp_path_for(const std::string& path) { return path + ".tmp." + std::to_string(getpid()); }

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = temp_path_for(path);
  auto failure = [&](const std::string& what) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return WriteError(path + ": " + what + ": " + std::strerror(err), err);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw failure("cannot create temporary file");
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      throw failure("write failed");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw failure("flush failed");
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw failure("rename failed");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw DataError(path + ": cannot open (" + (std::filesystem::exists(path) ? "not readable" : "no such file") + ")");
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) throw DataError(path + ": read error");
  return out.str();
}

}  // namespace r2rec
