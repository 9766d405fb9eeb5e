// A thin, checked layer over the HDF5 C API for r2rec's shard files.
//
// Every HDF5 call goes through R2_H5 (or the helpers here), which turns a failure into a one-line exception
// naming our file, the object, and HDF5's innermost message — HDF5's own multi-line error printing is switched
// off. Arrays are stored little-endian, chunked along the first dimension and deflate-compressed; object
// modification times are NOT recorded, so the same content gives byte-identical files (checksums compare).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

namespace r2rec::h5 {

// HDF5's innermost error message on the current stack (empty when none), then clears the stack.
std::string last_error();

// Whether this HDF5 build may be called from several threads at once (Debian's is built thread-safe).
bool library_threadsafe();

// Turns HDF5 error printing off for this process (idempotent; called by every File constructor).
void silence_errors();

// An owned hid_t, closed with the right H5*close on destruction.
class Handle {
 public:
  enum class Kind { kFile, kGroup, kDataset, kSpace, kProps, kAttr, kType };
  Handle() = default;
  Handle(hid_t id, Kind kind) : id_(id), kind_(kind) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), kind_(o.kind_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  void reset();

 private:
  hid_t id_ = -1;
  Kind kind_ = Kind::kFile;
};

// An open HDF5 file. `path` is kept for error messages: every error names it.
class File {
 public:
  static File create(const std::string& path);  // truncates
  static File open_read(const std::string& path);
  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }
  void close();  // flushes; errors thrown here, not swallowed in a destructor

  // Groups: "examples", "chains", ... (one level is all r2rec uses).
  void create_group(const std::string& name);
  bool has(const std::string& name) const;

  // 1-D or 2-D arrays of int8/uint8/int32/int64/uint64/double. `dims` product must equal data.size().
  template <class T>
  void write(const std::string& name, const std::vector<T>& data, const std::vector<hsize_t>& dims, int compression);
  template <class T>
  void write(const std::string& name, const std::vector<T>& data, int compression) {
    write(name, data, {static_cast<hsize_t>(data.size())}, compression);
  }
  // Reads a whole array; checks its element type class and width; `dims` receives the shape.
  template <class T>
  std::vector<T> read(const std::string& name, std::vector<hsize_t>* dims = nullptr) const;

  // Scalar attributes on the root group ("/") or on an object.
  void set_attr(const std::string& name, int64_t value, const std::string& object = "/");
  void set_attr(const std::string& name, const std::string& value, const std::string& object = "/");
  int64_t attr_int(const std::string& name, const std::string& object = "/") const;
  std::string attr_string(const std::string& name, const std::string& object = "/") const;
  bool has_attr(const std::string& name, const std::string& object = "/") const;

 private:
  File(const std::string& path, Handle file) : path_(path), file_(std::move(file)) {}
  [[noreturn]] void fail(const std::string& object, const std::string& what) const;
  void require_scalar(hid_t attr, const std::string& what) const;
  void write_raw(const std::string& name, const void* data, hid_t file_type, hid_t mem_type,
                 const std::vector<hsize_t>& dims, int compression);
  // Opens `name` once, checks its element type, bounds its size, asks `buffer_for(total elements)` for the
  // destination and reads into it.
  void read_raw(const std::string& name, hid_t mem_type, H5T_class_t cls, size_t width, std::vector<hsize_t>* dims,
                const std::function<void*(hsize_t)>& buffer_for) const;

  std::string path_;
  Handle file_;
};

}  // namespace r2rec::h5
