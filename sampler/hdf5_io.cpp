#include "sampler/hdf5_io.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>

#include "core/error.h"

namespace r2rec::h5 {

namespace {
template <class T>
struct TypeOf;
template <>
struct TypeOf<int8_t> {
  static hid_t file() { return H5T_STD_I8LE; }
  static hid_t mem() { return H5T_NATIVE_INT8; }
  static constexpr H5T_class_t cls = H5T_INTEGER;
};
template <>
struct TypeOf<uint8_t> {
  static hid_t file() { return H5T_STD_U8LE; }
  static hid_t mem() { return H5T_NATIVE_UINT8; }
  static constexpr H5T_class_t cls = H5T_INTEGER;
};
template <>
struct TypeOf<int32_t> {
  static hid_t file() { return H5T_STD_I32LE; }
  static hid_t mem() { return H5T_NATIVE_INT32; }
  static constexpr H5T_class_t cls = H5T_INTEGER;
};
template <>
struct TypeOf<int64_t> {
  static hid_t file() { return H5T_STD_I64LE; }
  static hid_t mem() { return H5T_NATIVE_INT64; }
  static constexpr H5T_class_t cls = H5T_INTEGER;
};
template <>
struct TypeOf<uint64_t> {
  static hid_t file() { return H5T_STD_U64LE; }
  static hid_t mem() { return H5T_NATIVE_UINT64; }
  static constexpr H5T_class_t cls = H5T_INTEGER;
};
template <>
struct TypeOf<double> {
  static hid_t file() { return H5T_IEEE_F64LE; }
  static hid_t mem() { return H5T_NATIVE_DOUBLE; }
  static constexpr H5T_class_t cls = H5T_FLOAT;
};

herr_t innermost(unsigned n, const H5E_error2_t* err, void* out) {
  auto* msg = static_cast<std::string*>(out);
  if (n == 0 && err && err->desc) *msg = err->desc;  // H5E_WALK_UPWARD: n == 0 is where it started
  return 0;
}

constexpr hsize_t kChunkElements = 1 << 16;         // per chunk; 64K x 4 B = 256 KiB, a good deflate unit
constexpr hsize_t kMaxElements = hsize_t{1} << 34;  // 16 G elements: far beyond any shard, below overflow
}  // namespace

std::string last_error() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg;
}

namespace {

// The first HDF5 call of the process (silence_errors and library_threadsafe both start here).
void no_shutdown_at_exit() {
  // No library shutdown at exit: HDF5 1.10's exit handler closes the files still in its table, and a file whose
  // flush failed (a full disk) stays there and crashes that handler after r2rec has reported the error. Every file
  // r2rec writes is closed explicitly (File::close), so nothing is lost by skipping it. Must precede any other
  // HDF5 call.
  static const bool once = [] { return H5dont_atexit() >= 0; }();
  (void)once;
}

}  // namespace

bool library_threadsafe() {
  no_shutdown_at_exit();
  hbool_t safe = 0;
  return H5is_library_threadsafe(&safe) >= 0 && safe;
}

void silence_errors() {
  no_shutdown_at_exit();
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    kind_ = o.kind_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (kind_) {
    case Kind::kFile:
      H5Fclose(id_);
      break;
    case Kind::kGroup:
      H5Gclose(id_);
      break;
    case Kind::kDataset:
      H5Dclose(id_);
      break;
    case Kind::kSpace:
      H5Sclose(id_);
      break;
    case Kind::kProps:
      H5Pclose(id_);
      break;
    case Kind::kAttr:
      H5Aclose(id_);
      break;
    case Kind::kType:
      H5Tclose(id_);
      break;
  }
  id_ = -1;
}

void File::fail(const std::string& object, const std::string& what) const {
  const std::string detail = last_error();
  throw DataError(path_ + (object.empty() ? "" : ": " + object) + ": " + what +
                  (detail.empty() ? "" : " (" + detail + ")"));
}

File File::create(const std::string& path) {
  silence_errors();
  errno = 0;
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) {
    const int err = errno;
    const std::string detail = last_error();
    throw WriteError(path + ": cannot create HDF5 file (" + detail + ")", err);
  }
  return File(path, Handle(id, Handle::Kind::kFile));
}

File File::open_read(const std::string& path) {
  silence_errors();
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    const std::string detail = last_error();
    throw DataError(path + ": not a readable HDF5 file (truncated or damaged?)" +
                    (detail.empty() ? "" : " (" + detail + ")"));
  }
  return File(path, Handle(id, Handle::Kind::kFile));
}

void File::close() {
  if (file_.get() < 0) return;
  if (H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0) fail("", "flush failed");
  file_.reset();
}

void File::create_group(const std::string& name) {
  Handle props(H5Pcreate(H5P_GROUP_CREATE), Handle::Kind::kProps);
  H5Pset_obj_track_times(props.get(), false);
  Handle g(H5Gcreate2(file_.get(), name.c_str(), H5P_DEFAULT, props.get(), H5P_DEFAULT), Handle::Kind::kGroup);
  if (g.get() < 0) fail(name, "cannot create group");
}

bool File::has(const std::string& name) const { return H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) > 0; }

void File::write_raw(const std::string& name, const void* data, hid_t file_type, hid_t mem_type,
                     const std::vector<hsize_t>& dims, int compression) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), Handle::Kind::kSpace);
  Handle props(H5Pcreate(H5P_DATASET_CREATE), Handle::Kind::kProps);
  H5Pset_obj_track_times(props.get(), false);
  const hsize_t total = std::accumulate(dims.begin(), dims.end(), hsize_t{1}, std::multiplies<hsize_t>());
  if (total > 0) {
    // Chunk along dimension 0; a row of a 2-D array stays whole.
    std::vector<hsize_t> chunk = dims;
    const hsize_t row = total / dims[0];
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(dims[0], kChunkElements / std::max<hsize_t>(1, row)));
    H5Pset_chunk(props.get(), static_cast<int>(chunk.size()), chunk.data());
    if (compression > 0) {
      H5Pset_shuffle(props.get());
      H5Pset_deflate(props.get(), static_cast<unsigned>(compression));
    }
  }
  Handle ds(H5Dcreate2(file_.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT),
            Handle::Kind::kDataset);
  if (ds.get() < 0) fail(name, "cannot create dataset");
  if (total > 0 && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) fail(name, "write failed");
}

void File::read_raw(const std::string& name, hid_t mem_type, H5T_class_t cls, size_t width, std::vector<hsize_t>* dims,
                    const std::function<void*(hsize_t)>& buffer_for) const {
  if (!has(name)) throw DataError(path_ + ": " + name + ": missing dataset");
  Handle ds(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), Handle::Kind::kDataset);
  if (ds.get() < 0) fail(name, "cannot open dataset");
  Handle type(H5Dget_type(ds.get()), Handle::Kind::kType);
  if (H5Tget_class(type.get()) != cls || H5Tget_size(type.get()) != width) {
    throw DataError(path_ + ": " + name + ": unexpected element type (want " + std::to_string(width) + "-byte " +
                    (cls == H5T_FLOAT ? "float" : "integer") + ")");
  }
  Handle space(H5Dget_space(ds.get()), Handle::Kind::kSpace);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail(name, "cannot read shape");
  dims->assign(static_cast<size_t>(rank), 0);
  H5Sget_simple_extent_dims(space.get(), dims->data(), nullptr);
  hsize_t total = 1;
  for (hsize_t d : *dims) {
    if (d != 0 && total > kMaxElements / d) throw DataError(path_ + ": " + name + ": implausible shape (too large)");
    total *= d;
  }
  void* data = buffer_for(total);
  if (total > 0 && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail(name, "read failed (corrupt chunk?)");
  }
}

template <class T>
void File::write(const std::string& name, const std::vector<T>& data, const std::vector<hsize_t>& dims,
                 int compression) {
  const hsize_t total = std::accumulate(dims.begin(), dims.end(), hsize_t{1}, std::multiplies<hsize_t>());
  if (total != data.size()) fail(name, "shape does not match the data (internal error)");
  write_raw(name, data.data(), TypeOf<T>::file(), TypeOf<T>::mem(), dims, compression);
}

template <class T>
std::vector<T> File::read(const std::string& name, std::vector<hsize_t>* dims) const {
  std::vector<hsize_t> shape;
  std::vector<T> out;
  read_raw(name, TypeOf<T>::mem(), TypeOf<T>::cls, sizeof(T), &shape, [&out](hsize_t total) -> void* {
    out.resize(total);
    return out.data();
  });
  if (dims) *dims = shape;
  return out;
}

#define R2_H5_INSTANTIATE(T)                                                                                 \
  template void File::write<T>(const std::string&, const std::vector<T>&, const std::vector<hsize_t>&, int); \
  template std::vector<T> File::read<T>(const std::string&, std::vector<hsize_t>*) const;
R2_H5_INSTANTIATE(int8_t)
R2_H5_INSTANTIATE(uint8_t)
R2_H5_INSTANTIATE(int32_t)
R2_H5_INSTANTIATE(int64_t)
R2_H5_INSTANTIATE(uint64_t)
R2_H5_INSTANTIATE(double)
#undef R2_H5_INSTANTIATE

void File::set_attr(const std::string& name, int64_t value, const std::string& object) {
  Handle space(H5Screate(H5S_SCALAR), Handle::Kind::kSpace);
  Handle a(H5Acreate_by_name(file_.get(), object.c_str(), name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
           Handle::Kind::kAttr);
  if (a.get() < 0 || H5Awrite(a.get(), H5T_NATIVE_INT64, &value) < 0)
    fail(object + "@" + name, "cannot write attribute");
}

void File::set_attr(const std::string& name, const std::string& value, const std::string& object) {
  Handle type(H5Tcopy(H5T_C_S1), Handle::Kind::kType);
  H5Tset_size(type.get(), std::max<size_t>(1, value.size()));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), Handle::Kind::kSpace);
  Handle a(H5Acreate_by_name(file_.get(), object.c_str(), name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
           Handle::Kind::kAttr);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  if (a.get() < 0 || H5Awrite(a.get(), type.get(), padded.data()) < 0)
    fail(object + "@" + name, "cannot write attribute");
}

void File::require_scalar(hid_t attr, const std::string& what) const {
  if (attr < 0) fail(what, "cannot open attribute");
  Handle space(H5Aget_space(attr), Handle::Kind::kSpace);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) throw DataError(path_ + ": " + what + ": not a single value");
}

bool File::has_attr(const std::string& name, const std::string& object) const {
  return H5Aexists_by_name(file_.get(), object.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

int64_t File::attr_int(const std::string& name, const std::string& object) const {
  if (!has_attr(name, object)) throw DataError(path_ + ": " + object + "@" + name + ": missing attribute");
  Handle a(H5Aopen_by_name(file_.get(), object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), Handle::Kind::kAttr);
  require_scalar(a.get(), object + "@" + name);
  Handle type(H5Aget_type(a.get()), Handle::Kind::kType);
  if (H5Tget_class(type.get()) != H5T_INTEGER) throw DataError(path_ + ": " + object + "@" + name + ": not an integer");
  int64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) fail(object + "@" + name, "cannot read attribute");
  return v;
}

std::string File::attr_string(const std::string& name, const std::string& object) const {
  if (!has_attr(name, object)) throw DataError(path_ + ": " + object + "@" + name + ": missing attribute");
  Handle a(H5Aopen_by_name(file_.get(), object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT), Handle::Kind::kAttr);
  require_scalar(a.get(), object + "@" + name);
  Handle type(H5Aget_type(a.get()), Handle::Kind::kType);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0) {
    throw DataError(path_ + ": " + object + "@" + name + ": not a fixed-length string");
  }
  std::string v(H5Tget_size(type.get()), '\0');
  if (H5Aread(a.get(), type.get(), v.data()) < 0) fail(object + "@" + name, "cannot read attribute");
  v.resize(std::strlen(v.c_str()));
  return v;
}

}  // namespace r2rec::h5
