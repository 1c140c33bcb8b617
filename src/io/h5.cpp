#include "segrec/io/h5.hpp"

#include "segrec/core/fault.hpp"
#include "segrec/core/memory_budget.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/core/watchdog.hpp"

#include <fcntl.h>
#include <mpi.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>

namespace segrec::h5 {

namespace {

// HDF5 prints its error stack to stderr by default; we read it ourselves.
// Whatever is still open when MPI finalizes (handles leaked while an error
// unwound) is closed first, while MPI-IO can still run.
struct SilenceHdf5 {
  SilenceHdf5() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    MpiEnvironment::at_finalize([] { H5close(); });
  }
};
const SilenceHdf5 silence_hdf5;

std::string g_command_line;
std::string g_made_by;
bool g_parallel_io = false;  // set once any file is opened on more than one rank

herr_t walk_cb(unsigned n, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n < 3 && e->desc && *e->desc) {  // the innermost entries say what went wrong
    if (!out->empty()) *out += "; ";
    *out += e->desc;
  }
  return 0;
}

const MPI_Comm* mpi_comm(const Comm& c) { return static_cast<const MPI_Comm*>(c.native()); }

// Runs fn(), one HDF5 call on `file` that may wait for the other ranks of `comm`
// (open, create, flush, close, a metadata read or write: metadata I/O is collective;
// a collective dataset transfer). On several ranks it is marked for the stall
// watchdog under `call`, and SEGREC_STOP=<call>:<rank> freezes this rank in it
// (tests). errno is cleared first so that a failure can report the system's reason.
template <class F>
auto watched(const Comm& comm, const char* call, const std::string& file, F&& fn) {
  errno = 0;
  if (comm.size() == 1) return fn();
  const watchdog::IoCall mark(call, file);
  stop_point(call, comm, file);
  return fn();
}

const char* closer_name(Handle::Closer c) {
  if (c == H5Fclose) return "H5Fclose";
  if (c == H5Dclose) return "H5Dclose";
  if (c == H5Gclose) return "H5Gclose";
  if (c == H5Aclose) return "H5Aclose";
  if (c == H5Oclose) return "H5Oclose";
  return "H5close";
}

// The system's reason for a failed write, flush or close: errno as the call left it
// (MPI-IO keeps it from the failed write), else a full file system.
std::string system_reason(int err, const std::string& file) {
  if (err == ENOSPC || err == EDQUOT || err == EIO || err == EFBIG || err == EROFS)
    return std::strerror(err);
  struct statvfs st {};
  const auto dir = std::filesystem::path(file).parent_path();
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) == 0 && st.f_bavail == 0)
    return std::strerror(ENOSPC);
  return {};
}

// check() for a write, flush or close of `file`: the message carries the system's reason.
void check_write(herr_t rc, const std::string& what, const std::string& file) {
  if (rc >= 0) return;
  const int err = errno;
  std::string text = error_text();
  const std::string reason = system_reason(err, file);
  if (!reason.empty() && text.find(reason) == std::string::npos) text = reason + " (" + text + ")";
  throw IoError(what + ": " + text);
}

}  // namespace

std::string error_text() {
  std::string out;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &out);
  H5Eclear2(H5E_DEFAULT);
  return out.empty() ? "unknown HDF5 error" : out;
}

void check(herr_t rc, const std::string& what) {
  if (rc < 0) throw IoError(what + ": " + error_text());
}

Handle::Handle(hid_t id, Closer closer, const char* what) : id_(id), closer_(closer) {
  if (id < 0) throw IoError(std::string(what) + ": " + error_text());
}

Handle::Handle(hid_t id, Closer closer, const char* what, const Comm& comm, const std::string& file)
    : Handle(id, closer, what) {
  if (comm.size() > 1) {
    comm_ = &comm;
    file_ = file;
  }
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
    closer_ = o.closer_;
    comm_ = o.comm_;
    file_ = std::move(o.file_);
  }
  return *this;
}

herr_t Handle::close() {
  const hid_t id = std::exchange(id_, H5I_INVALID_HID);
  if (id < 0 || !closer_) return 0;
  if (!comm_) return closer_(id);
  return watched(*comm_, closer_name(closer_), file_, [&] { return closer_(id); });
}

void Handle::reset() {
  // While a local error unwinds a parallel job, other ranks may never reach the
  // matching collective close: leak the handle, the job is being aborted anyway.
  // A collective error unwinds every rank alike, so closing stays matched.
  const bool local_unwind =
      g_parallel_io && std::uncaught_exceptions() > 0 && !detail::last_error_collective;
  if (local_unwind) id_ = H5I_INVALID_HID;
  close();
}

void set_memory_budget(std::int64_t bytes) { set_memory_per_rank(bytes); }
std::int64_t memory_budget() { return memory_per_rank(); }

void set_command_line(const std::string& cmd) { g_command_line = cmd; }
const std::string& command_line() { return g_command_line; }
void set_made_by(const std::string& hash) { g_made_by = hash; }

// ---- File ---------------------------------------------------------------------------

namespace {

Handle make_fapl(const Comm& comm) {
  if (comm.size() > 1) g_parallel_io = true;
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate(file access)");
  if (comm.is_mpi()) {
    check(H5Pset_fapl_mpio(fapl.id(), *mpi_comm(comm), MPI_INFO_NULL), "H5Pset_fapl_mpio");
    check(H5Pset_all_coll_metadata_ops(fapl.id(), true), "H5Pset_all_coll_metadata_ops");
    check(H5Pset_coll_metadata_write(fapl.id(), true), "H5Pset_coll_metadata_write");
  }
  return fapl;
}

// Everything that stops a file from opening is agreed on collectively so that
// no rank enters a collective HDF5 call alone.
void check_readable(const std::string& path, const Comm& comm) {
  std::string err;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    err = "cannot open '" + path + "': no such file";
  else if (std::filesystem::is_directory(path, ec))
    err = "cannot open '" + path + "': is a directory";
  else if (::access(path.c_str(), R_OK) != 0)
    err = "cannot open '" + path + "': " + std::strerror(errno);
  else {
    std::ifstream f(path, std::ios::binary);
    char sig[8] = {};
    f.read(sig, 8);
    if (!f || std::string(sig, 8) != std::string("\x89HDF\r\n\x1a\n", 8))
      err = "'" + path + "' is not an HDF5 file";
  }
  comm.check_all(err, kExitData);
}

// ---- a file's metadata read on one rank alone --------------------------------------

// Attributes are small; a larger one claimed by a header is read no further.
constexpr hsize_t kMaxAttrBytes = 1 << 20;

struct Walk {
  std::string error;  // the first failure: HDF5's error text
};

// Reads one attribute's header and value.
herr_t read_attr_cb(hid_t loc, const char* name, const H5A_info_t*, void* data) {
  auto* walk = static_cast<Walk*>(data);
  const hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  const hid_t type = H5Aget_type(a), space = H5Aget_space(a);
  herr_t rc = type < 0 || space < 0 ? -1 : 0;
  const hssize_t n = rc < 0 ? -1 : H5Sget_simple_extent_npoints(space);
  if (n < 0) rc = -1;
  if (rc == 0 && H5Tis_variable_str(type) > 0) {
    std::vector<char*> v(static_cast<std::size_t>(n));
    rc = H5Aread(a, type, v.data());
    if (rc >= 0) H5Dvlen_reclaim(type, space, H5P_DEFAULT, v.data());
  } else if (rc == 0 && H5Tget_class(type) != H5T_VLEN) {
    const hsize_t bytes = static_cast<hsize_t>(n) * H5Tget_size(type);
    if (bytes <= kMaxAttrBytes) {
      std::vector<char> buf(static_cast<std::size_t>(bytes));
      rc = H5Aread(a, type, buf.data());
    }
  }
  if (rc < 0 && walk->error.empty())
    walk->error = std::string("attribute '") + name + "': " + error_text();
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  H5Aclose(a);
  return rc < 0 ? -1 : 0;
}

// Opens one object (group, dataset, named type) and reads its attributes and, for a
// dataset, its type, shape and layout.
herr_t read_object_cb(hid_t file, const char* name, const H5O_info_t* info, void* data) {
  auto* walk = static_cast<Walk*>(data);
  const hid_t o = H5Oopen(file, name, H5P_DEFAULT);
  if (o < 0) {
    walk->error = std::string("object '") + name + "': " + error_text();
    return -1;
  }
  herr_t rc = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, nullptr, read_attr_cb, walk);
  if (rc >= 0 && info->type == H5O_TYPE_DATASET) {
    const hid_t t = H5Dget_type(o), sp = H5Dget_space(o), pl = H5Dget_create_plist(o);
    if (t < 0 || sp < 0 || pl < 0 || H5Sget_simple_extent_ndims(sp) < 0) rc = -1;
    for (const hid_t id : {t, sp, pl})
      if (id >= 0) H5Idec_ref(id);
  }
  if (rc < 0 && walk->error.empty())
    walk->error = std::string("object '") + name + "': " + error_text();
  H5Oclose(o);
  return rc < 0 ? -1 : 0;
}

// Reads every object header, link and attribute of `path` on this rank alone, with
// HDF5's serial driver: all that the collective open and segrec's metadata reads
// touch. Returns "" for a readable segrec file, else the reason (exit 3). A damaged
// file thus fails on one rank, outside any collective call: in a collective
// metadata read rank 0 reads for all and fails alone, and the others wait.
std::string read_metadata_alone(const std::string& path) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return "cannot read '" + path + "' (truncated or damaged?): " + error_text();
  Walk walk;
  if (H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, read_object_cb, &walk,
                H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS) < 0 &&
      walk.error.empty())
    walk.error = error_text();
  std::string err;
  if (!walk.error.empty())
    err = "cannot read '" + path + "' (truncated or damaged?): " + walk.error;
  // The format attributes: a fixed-length string and an integer.
  auto attr_class = [&](const char* name, bool* variable) {
    if (H5Aexists(f, name) <= 0) return H5T_NO_CLASS;
    const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    const hid_t t = a < 0 ? -1 : H5Aget_type(a);
    const H5T_class_t c = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    *variable = t >= 0 && H5Tis_variable_str(t) > 0;
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return c;
  };
  bool var_name = false, var_version = false;
  if (err.empty()) {
    const H5T_class_t name_class = attr_class("format", &var_name);
    const H5T_class_t version_class = attr_class("format_version", &var_version);
    if (name_class == H5T_NO_CLASS || version_class == H5T_NO_CLASS)
      err = "'" + path + "' is an HDF5 file but not a segrec file (no format attribute)";
    else if (name_class != H5T_STRING || var_name)
      err = "'" + path + "' is an HDF5 file but not a segrec file (its format attribute is " +
            (var_name ? "a variable-length string" : "not a string") + ")";
    else if (version_class != H5T_INTEGER)
      err = "'" + path +
            "' is an HDF5 file but not a segrec file (its format_version attribute is not an "
            "integer)";
  }
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  return err;
}

// Rank 0 reads the metadata alone and every rank gets its verdict (a DataError,
// collective) before any rank enters the collective open.
void check_metadata(const std::string& path, const Comm& comm) {
  std::string err;
  if (comm.is_root()) err = read_metadata_alone(path);
  comm.check_all(err, kExitData);
}

// watched() on f's ranks and name.
template <class F>
auto watched(const File& f, const char* call, F&& fn) {
  return watched(f.comm(), call, f.path(), std::forward<F>(fn));
}
// A handle to an object of f: its close is watched.
Handle object_handle(const File& f, hid_t id, Handle::Closer closer, const std::string& what) {
  return Handle(id, closer, what.c_str(), f.comm(), f.path());
}
}  // namespace

File File::create(const std::string& path, const Comm& comm, const Format& format) {
  File f;
  f.comm_ = &comm;
  f.path_ = path;
  // One temporary name for all ranks, chosen by rank 0.
  std::string tmp;
  if (comm.is_root()) tmp = temporary_name(path);
  comm.broadcast(tmp);
  f.tmp_path_ = tmp;
  std::string err;
  {
    const auto dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
      err = "cannot write '" + path + "': directory '" + dir.string() + "' does not exist";
    else if (::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0)
      err = "cannot write '" + path + "': directory '" + (dir.empty() ? "." : dir.string()) +
            "' is not writable";
  }
  // A probe of the temporary name: a read-only file system or a folder that refuses new
  // files (root passes access() everywhere) gives one clear error on every rank instead of a
  // failure inside the collective create.
  if (err.empty() && comm.is_root()) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
      err = "cannot write '" + path + "': " + std::strerror(errno);
    else {
      ::close(fd);
      ::unlink(tmp.c_str());
    }
  }
  comm.check_all(err, kExitIo);
  register_temporary(tmp);
  Handle fapl = make_fapl(comm);
  f.file_ =
      Handle(watched(comm, "H5Fcreate", path,
                     [&] { return H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()); }),
             H5Fclose, ("cannot create '" + path + "'").c_str(), comm, path);
  f.writable_ = true;
  f.set_attr("/", "format", format.name);
  f.set_attr("/", "format_version", static_cast<std::int64_t>(format.version));
  f.set_attr("/", "segrec_version", std::string(SEGREC_VERSION));
  f.set_attr("/", "command_line", g_command_line);
  f.set_attr("/", "ranks", static_cast<std::int64_t>(comm.size()));
  if (!g_made_by.empty()) f.set_attr("/", "made_by", g_made_by);
  return f;
}

File File::open_any(const std::string& path, const Comm& comm) {
  check_readable(path, comm);
  check_metadata(path, comm);
  File f;
  f.comm_ = &comm;
  f.path_ = path;
  Handle fapl = make_fapl(comm);
  const hid_t id = watched(comm, "H5Fopen", path,
                           [&] { return H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id()); });
  std::string err;
  if (id < 0) err = "cannot read '" + path + "' (truncated or damaged?): " + error_text();
  comm.check_all(err, kExitData);
  f.file_ = Handle(id, H5Fclose, "H5Fopen", comm, path);
  return f;
}

File File::open(const std::string& path, const Comm& comm, const Format& format) {
  File f = open_any(path, comm);
  const Format got = f.format();
  if (got.name != format.name)
    throw DataError("'" + path + "' is a " + got.name + " file, expected " + format.name, true);
  if (got.version > format.version || got.version < 1)
    throw DataError("'" + path + "' has " + got.name + " format version " +
                        std::to_string(got.version) + ", this segrec reads up to version " +
                        std::to_string(format.version),
                    true);
  return f;
}

File::File(File&& o) noexcept
    : comm_(o.comm_),
      path_(std::move(o.path_)),
      tmp_path_(std::exchange(o.tmp_path_, {})),
      file_(std::move(o.file_)),
      writable_(std::exchange(o.writable_, false)) {}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    discard();
    comm_ = o.comm_;
    path_ = std::move(o.path_);
    tmp_path_ = std::exchange(o.tmp_path_, {});
    file_ = std::move(o.file_);
    writable_ = std::exchange(o.writable_, false);
  }
  return *this;
}

File::~File() { discard(); }

void File::discard() noexcept {
  if (writable_ && !tmp_path_.empty()) {
    file_.reset();
    ::unlink(tmp_path_.c_str());  // on every rank: the one unwinding may not be rank 0
    unregister_temporary(tmp_path_);
  }
  tmp_path_.clear();
  writable_ = false;
}

void File::commit() {
  SEGREC_ASSERT(writable_, "commit() on a file opened for reading");
  check_write(
      watched(*comm_, "H5Fflush", path_, [&] { return H5Fflush(file_.id(), H5F_SCOPE_GLOBAL); }),
      "writing '" + path_ + "'", tmp_path_);
  check_write(file_.close(), "writing '" + path_ + "' (closing it)", tmp_path_);
  std::string err;
  if (comm_->is_root() && std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    err = "cannot rename '" + tmp_path_ + "' to '" + path_ + "'";
  comm_->check_all(err, kExitIo);
  unregister_temporary(tmp_path_);
  record_output(path_);
  tmp_path_.clear();
  writable_ = false;
}

Format File::format() const {
  return {attr_string("/", "format"), static_cast<int>(attr_int("/", "format_version"))};
}

bool File::exists(const std::string& name) const {
  // Walk the path one link at a time: H5Lexists fails on a missing parent.
  std::string cur;
  std::size_t pos = name[0] == '/' ? 1 : 0;
  while (pos <= name.size()) {
    const auto next = name.find('/', pos);
    cur = name.substr(0, next == std::string::npos ? name.size() : next);
    const htri_t e = watched(*this, "H5Lexists",
                             [&] { return H5Lexists(file_.id(), cur.c_str(), H5P_DEFAULT); });
    if (e <= 0) return false;
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return true;
}

void File::create_group(const std::string& name) {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose, "H5Pcreate(link)");
  check(H5Pset_create_intermediate_group(lcpl.id(), 1), "H5Pset_create_intermediate_group");
  Handle g = object_handle(*this,
                           watched(*this, "H5Gcreate2",
                                   [&] {
                                     return H5Gcreate2(file_.id(), name.c_str(), lcpl.id(),
                                                       H5P_DEFAULT, H5P_DEFAULT);
                                   }),
                           H5Gclose, "cannot create group '" + name + "' in '" + path_ + "'");
}

std::vector<std::string> File::list(const std::string& group) const {
  std::vector<std::string> names;
  auto cb = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  };
  check(watched(*this, "H5Literate_by_name",
                [&] {
                  return H5Literate_by_name(file_.id(), group.c_str(), H5_INDEX_NAME, H5_ITER_INC,
                                            nullptr, cb, &names, H5P_DEFAULT);
                }),
        "listing '" + group + "' in '" + path_ + "'");
  return names;
}

namespace {
Handle open_object(const File& f, const std::string& obj) {
  return object_handle(
      f, watched(f, "H5Oopen", [&] { return H5Oopen(f.id(), obj.c_str(), H5P_DEFAULT); }), H5Oclose,
      "cannot open '" + obj + "' in '" + f.path() + "'");
}

bool attr_exists(const File& f, const Handle& o, const std::string& name) {
  return watched(f, "H5Aexists", [&] { return H5Aexists(o.id(), name.c_str()); }) > 0;
}

void write_attr(const File& f, const std::string& obj, const std::string& name, hid_t type,
                const void* data) {
  Handle o = open_object(f, obj);
  if (attr_exists(f, o, name))
    check(watched(f, "H5Adelete", [&] { return H5Adelete(o.id(), name.c_str()); }), "H5Adelete");
  Handle space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  Handle a = object_handle(f,
                           watched(f, "H5Acreate2",
                                   [&] {
                                     return H5Acreate2(o.id(), name.c_str(), type, space.id(),
                                                       H5P_DEFAULT, H5P_DEFAULT);
                                   }),
                           H5Aclose, "cannot create attribute '" + name + "'");
  check_write(watched(f, "H5Awrite", [&] { return H5Awrite(a.id(), type, data); }),
              "writing attribute '" + name + "'", f.path());
}

Handle open_attr(const File& f, const std::string& obj, const std::string& name) {
  Handle o = open_object(f, obj);
  const hid_t id =
      watched(f, "H5Aopen", [&] { return H5Aopen(o.id(), name.c_str(), H5P_DEFAULT); });
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    throw DataError("'" + f.path() + "': attribute '" + name + "' missing on '" + obj + "'", true);
  }
  return object_handle(f, id, H5Aclose, "H5Aopen");
}

Handle open_dataset(const File& f, const std::string& name) {
  return object_handle(
      f, watched(f, "H5Dopen2", [&] { return H5Dopen2(f.id(), name.c_str(), H5P_DEFAULT); }),
      H5Dclose, "cannot open dataset '" + name + "' in '" + f.path() + "'");
}

// Reads attribute a into `buf` as `type`.
void read_attr(const File& f, const Handle& a, hid_t type, void* buf, const std::string& name) {
  check(watched(f, "H5Aread", [&] { return H5Aread(a.id(), type, buf); }),
        "reading attribute '" + name + "' of '" + f.path() + "'");
}
}  // namespace

bool File::is_dataset(const std::string& name) const {
  return H5Iget_type(open_object(*this, name).id()) == H5I_DATASET;
}

// ---- attributes ----------------------------------------------------------------------

void File::set_attr(const std::string& obj, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check(H5Tset_size(type.id(), std::max<std::size_t>(1, value.size())), "H5Tset_size");
  check(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "H5Tset_strpad");
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_attr(*this, obj, name, type.id(), padded.data());
}

void File::set_attr(const std::string& obj, const std::string& name, std::int64_t value) {
  write_attr(*this, obj, name, H5T_NATIVE_INT64, &value);
}

void File::set_attr(const std::string& obj, const std::string& name, double value) {
  write_attr(*this, obj, name, H5T_NATIVE_DOUBLE, &value);
}

bool File::has_attr(const std::string& obj, const std::string& name) const {
  if (obj != "/" && !exists(obj)) return false;
  return attr_exists(*this, open_object(*this, obj), name);
}

std::string File::attr_string(const std::string& obj, const std::string& name) const {
  Handle a = open_attr(*this, obj, name);
  Handle ftype(H5Aget_type(a.id()), H5Tclose, "H5Aget_type");
  if (H5Tget_class(ftype.id()) != H5T_STRING)
    throw DataError("'" + path_ + "': attribute '" + name + "' is not a string", true);
  if (H5Tis_variable_str(ftype.id()) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
    check(H5Tset_size(mtype.id(), H5T_VARIABLE), "H5Tset_size");
    char* s = nullptr;
    read_attr(*this, a, mtype.id(), &s, name);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  const std::size_t n = H5Tget_size(ftype.id());
  std::string buf(n, '\0');
  read_attr(*this, a, ftype.id(), buf.data(), name);
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

std::int64_t File::attr_int(const std::string& obj, const std::string& name) const {
  Handle a = open_attr(*this, obj, name);
  std::int64_t v = 0;
  read_attr(*this, a, H5T_NATIVE_INT64, &v, name);
  return v;
}

double File::attr_double(const std::string& obj, const std::string& name) const {
  Handle a = open_attr(*this, obj, name);
  double v = 0;
  read_attr(*this, a, H5T_NATIVE_DOUBLE, &v, name);
  return v;
}

// ---- datasets ------------------------------------------------------------------------

Handle File::dxpl() const {
  Handle p(H5Pcreate(H5P_DATASET_XFER), H5Pclose, "H5Pcreate(xfer)");
  if (comm_->is_mpi()) check(H5Pset_dxpl_mpio(p.id(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio");
  return p;
}

std::vector<std::int64_t> File::shape(const std::string& name) const {
  if (!exists(name)) throw DataError("'" + path_ + "': dataset '" + name + "' is missing", true);
  Handle d = open_dataset(*this, name);
  Handle s(H5Dget_space(d.id()), H5Sclose, "H5Dget_space");
  const int nd = H5Sget_simple_extent_ndims(s.id());
  if (nd < 1 || nd > 2)
    throw DataError("'" + path_ + "': dataset '" + name + "' has " + std::to_string(nd) + " dims",
                    true);
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(s.id(), dims, nullptr);
  std::vector<std::int64_t> out;
  for (int i = 0; i < nd; ++i) out.push_back(static_cast<std::int64_t>(dims[i]));
  return out;
}

namespace {
// Selects rows [start, start + count) of a file space (none when count is 0, so a
// rank without rows still joins the collective call); returns the memory space.
Handle select_rows(const Handle& fspace, int nd, const hsize_t* start, const hsize_t* count) {
  Handle mspace(H5Screate_simple(nd, count, nullptr), H5Sclose, "H5Screate_simple");
  if (count[0] == 0) {
    check(H5Sselect_none(fspace.id()), "H5Sselect_none");
    check(H5Sselect_none(mspace.id()), "H5Sselect_none");
  } else {
    check(H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, start, nullptr, count, nullptr),
          "H5Sselect_hyperslab");
  }
  return mspace;
}
}  // namespace

std::int64_t File::write_impl(const std::string& name, hid_t type, const void* data,
                              std::int64_t n_local, std::int64_t cols, bool partitioned) {
  const std::int64_t width = cols > 0 ? cols : 1;
  SEGREC_ASSERT(n_local % width == 0, "dataset '", name, "': ", n_local,
                " values are not whole rows of ", width);
  const std::int64_t rows_local = n_local / width;
  std::int64_t offset = 0, rows_total = rows_local;
  if (partitioned) {
    offset = comm_->exscan_sum(rows_local);
    rows_total = comm_->allreduce_value(rows_local);
  }
  const int nd = cols > 0 ? 2 : 1;
  hsize_t dims[2] = {static_cast<hsize_t>(rows_total), static_cast<hsize_t>(width)};
  Handle fspace(H5Screate_simple(nd, dims, nullptr), H5Sclose, "H5Screate_simple");
  Handle dset =
      object_handle(*this,
                    watched(*this, "H5Dcreate2",
                            [&] {
                              return H5Dcreate2(file_.id(), name.c_str(), type, fspace.id(),
                                                H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
                            }),
                    H5Dclose, "cannot create dataset '" + name + "' in '" + path_ + "'");
  if (rows_total == 0) return offset;  // nothing is allocated for an empty dataset
  // Replicated data is written by rank 0 alone; every rank still joins the call.
  const bool mine = partitioned || comm_->is_root();
  const hsize_t count[2] = {static_cast<hsize_t>(mine ? rows_local : 0),
                            static_cast<hsize_t>(width)};
  const hsize_t start[2] = {static_cast<hsize_t>(offset), 0};
  Handle mspace = select_rows(fspace, nd, start, count);
  Handle xfer = dxpl();
  check_write(
      watched(*this, "H5Dwrite",
              [&] { return H5Dwrite(dset.id(), type, mspace.id(), fspace.id(), xfer.id(), data); }),
      "writing dataset '" + name + "' to '" + path_ + "'", tmp_path_);
  return offset;
}

void File::read_impl(const std::string& name, hid_t type, void* data, std::int64_t row_begin,
                     std::int64_t row_count) const {
  const auto s = shape(name);
  const std::int64_t width = s.size() == 2 ? s[1] : 1;
  if (row_begin < 0 || row_count < 0 || row_begin + row_count > s[0])
    throw DataError("'" + path_ + "': rows [" + std::to_string(row_begin) + ", " +
                        std::to_string(row_begin + row_count) + ") are outside dataset '" + name +
                        "' of " + std::to_string(s[0]) + " rows",
                    true);
  if (s[0] == 0 || width == 0) return;  // an empty dataset has no storage to read
  Handle dset = open_dataset(*this, name);
  Handle fspace(H5Dget_space(dset.id()), H5Sclose, "H5Dget_space");
  const hsize_t count[2] = {static_cast<hsize_t>(row_count), static_cast<hsize_t>(width)};
  const hsize_t start[2] = {static_cast<hsize_t>(row_begin), 0};
  Handle mspace = select_rows(fspace, static_cast<int>(s.size()), start, count);
  Handle xfer = dxpl();
  check(
      watched(*this, "H5Dread",
              [&] { return H5Dread(dset.id(), type, mspace.id(), fspace.id(), xfer.id(), data); }),
      "reading dataset '" + name + "' from '" + path_ + "'");
}

void File::check_read_size(const std::string& name, std::int64_t row_count, std::int64_t cols,
                           std::size_t elem_bytes) const {
  std::string err;
  // In long double: a hostile shape must not overflow the product.
  const long double bytes = static_cast<long double>(std::max<std::int64_t>(row_count, 0)) *
                            static_cast<long double>(std::max<std::int64_t>(cols, 0)) *
                            static_cast<long double>(elem_bytes);
  if (bytes > static_cast<long double>(memory_per_rank())) {
    const auto human = [](long double b) {
      return progress::format_bytes(static_cast<double>(b), 3);
    };
    err = "'" + path_ + "': dataset '" + name + "' needs " + human(bytes) + " on one rank (" +
          std::to_string(row_count) + " x " + std::to_string(cols) + " x " +
          std::to_string(elem_bytes) + " bytes), over the " +
          human(static_cast<long double>(memory_per_rank())) +
          " allowed per rank (--max-memory-per-rank): a damaged file, or too few ranks";
  }
  comm_->check_all(err, kExitData);
}

std::vector<char> File::read_bytes(const std::string& name) const {
  const auto s = shape(name);
  Handle dset = open_dataset(*this, name);
  Handle ftype(H5Dget_type(dset.id()), H5Tclose, "H5Dget_type");
  Handle mtype(H5Tget_native_type(ftype.id(), H5T_DIR_ASCEND), H5Tclose, "H5Tget_native_type");
  std::size_t n = H5Tget_size(mtype.id());
  check_read_size(name, s[0], s.size() == 2 ? s[1] : 1, n);
  for (auto d : s) n *= static_cast<std::size_t>(d);
  std::vector<char> out(n);
  read_impl(name, mtype.id(), out.data(), 0, s[0]);
  return out;
}

void File::write_strings(const std::string& name, const std::vector<std::string>& local,
                         bool partitioned) {
  std::int64_t len = 1;
  for (const auto& s : local)
    len = std::max<std::int64_t>(len, static_cast<std::int64_t>(s.size()));
  if (partitioned) len = comm_->allreduce_value(len, Op::kMax);
  std::vector<char> buf(local.size() * static_cast<std::size_t>(len), '\0');
  for (std::size_t i = 0; i < local.size(); ++i)
    std::memcpy(buf.data() + i * static_cast<std::size_t>(len), local[i].data(), local[i].size());
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check(H5Tset_size(type.id(), static_cast<std::size_t>(len)), "H5Tset_size");
  check(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "H5Tset_strpad");
  write_impl(name, type.id(), buf.data(), static_cast<std::int64_t>(local.size()), 0, partitioned);
}

std::vector<std::string> File::read_strings(const std::string& name, std::int64_t row_begin,
                                            std::int64_t row_count) const {
  Handle dset = open_dataset(*this, name);
  Handle ftype(H5Dget_type(dset.id()), H5Tclose, "H5Dget_type");
  if (H5Tget_class(ftype.id()) != H5T_STRING || H5Tis_variable_str(ftype.id()) > 0)
    throw DataError("'" + path_ + "': dataset '" + name + "' is not fixed-length strings", true);
  const std::size_t len = H5Tget_size(ftype.id());
  check_read_size(name, row_count, 1, len + sizeof(std::string));
  std::vector<char> buf(static_cast<std::size_t>(row_count) * len);
  read_impl(name, ftype.id(), buf.data(), row_begin, row_count);
  std::vector<std::string> out(static_cast<std::size_t>(row_count));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char* p = buf.data() + i * len;
    out[i].assign(p, strnlen(p, len));
  }
  return out;
}

}  // namespace segrec::h5
