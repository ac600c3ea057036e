// VoxPrompt from an ITK host: read a CT volume with ITK, hand ITK's own pixel buffer to libvoxprompt
// (no copy), segment one object from a box prompt in 3D, and write the mask with ITK on the input grid.
//
//   voxprompt_itk INPUT OUTPUT x0,y0,z0,x1,y1,z1 [--model DIR] [--ort-lib PATH] [--modality ct|mr|auto]
//                 [--threads N] [--providers LIST]
//
// The box is inclusive voxel indices (x = i, ITK's fastest index), as the voxprompt CLI's --box-ijk.

#include "voxprompt.h"

#include "itkImage.h"
#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using InputImage = itk::Image<short, 3>;
using MaskImage = itk::Image<unsigned char, 3>;

std::string last_error() {
  size_t needed = 0;
  vxp_last_error(nullptr, 0, &needed);
  std::vector<char> buf(needed + 1, '\0');
  vxp_last_error(buf.data(), buf.size(), nullptr);
  return std::string(buf.data());
}

// Throws with the library's message when a vxp_* call fails.
void check(vxp_result r, const char *what) {
  if (r != VXP_RESULT_OK) {
    throw std::runtime_error(std::string(what) + ": " + vxp_result_str(r) + " (" + last_error() + ")");
  }
}

bool parse_box(const std::string &text, int64_t box[6]) {
  std::istringstream in(text);
  std::string part;
  int n = 0;
  while (std::getline(in, part, ',')) {
    if (n == 6 || part.empty()) return false;
    char *end = nullptr;
    box[n++] = std::strtoll(part.c_str(), &end, 10);
    if (*end != '\0') return false;
  }
  return n == 6;
}

// Progress on a terminal only (a log gets just the summary lines).
bool on_progress(void *, uint32_t, float fraction) {
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\rsegmenting: %3.0f%%", 100.0 * fraction);
  return true;  // never cancel
}

// RAII for the library's handles.
struct Options {
  vxp_options *p = nullptr;
  ~Options() { vxp_options_free(p); }
};
struct Engine {
  vxp_engine *p = nullptr;
  ~Engine() { vxp_engine_free(p); }
};
struct Session {
  vxp_session *p = nullptr;
  ~Session() { vxp_session_free(p); }
};

int usage() {
  std::cerr << "usage: voxprompt_itk INPUT OUTPUT x0,y0,z0,x1,y1,z1 [--model DIR] [--ort-lib PATH]\n"
               "                     [--modality ct|mr|auto] [--threads N] [--providers LIST]\n";
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 4) return usage();
  const std::string input_path = argv[1], output_path = argv[2];
  int64_t box[6];
  if (!parse_box(argv[3], box)) {
    std::cerr << "bad box '" << argv[3] << "': expected x0,y0,z0,x1,y1,z1\n";
    return 2;
  }
  std::string model_dir = "models/litemedsam", ort_lib, providers = "cpu";
  uint32_t intensity = VXP_INTENSITY_AUTO, threads = 0;
  for (int a = 4; a < argc; ++a) {
    const std::string flag = argv[a];
    if (a + 1 >= argc) return usage();
    const std::string value = argv[++a];
    if (flag == "--model") {
      model_dir = value;
    } else if (flag == "--ort-lib") {
      ort_lib = value;
    } else if (flag == "--providers") {
      providers = value;
    } else if (flag == "--threads") {
      threads = static_cast<uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    } else if (flag == "--modality") {
      if (value == "ct") {
        intensity = VXP_INTENSITY_CT;
      } else if (value == "mr") {
        intensity = VXP_INTENSITY_MR;
      } else if (value == "auto") {
        intensity = VXP_INTENSITY_AUTO;
      } else {
        return usage();
      }
    } else {
      return usage();
    }
  }

  try {
    uint32_t major = 0, minor = 0;
    check(vxp_abi_version(&major, &minor), "vxp_abi_version");
    if (major != VXP_ABI_VERSION_MAJOR) {
      std::cerr << "libvoxprompt ABI " << major << "." << minor << " does not match the header's "
                << VXP_ABI_VERSION_MAJOR << "." << VXP_ABI_VERSION_MINOR << "\n";
      return 1;
    }
    std::cerr << vxp_version() << "\n";

    // --- Read with ITK. ---
    auto reader = itk::ImageFileReader<InputImage>::New();
    reader->SetFileName(input_path);
    reader->Update();
    InputImage::Pointer image = reader->GetOutput();

    // The pixel buffer ITK holds is the buffered region, contiguous, index 0 fastest: (i, j, k) of the
    // buffer is ITK index region.GetIndex() + (i, j, k). For an image straight from a reader that start
    // index is (0, 0, 0), so the box on the command line is in the file's voxel indices.
    const InputImage::RegionType region = image->GetBufferedRegion();
    const InputImage::SizeType size = region.GetSize();
    const InputImage::SpacingType spacing = image->GetSpacing();
    const InputImage::DirectionType direction = image->GetDirection();

    // IJK -> physical: p = origin + D * diag(spacing) * index. ITK's physical space is LPS (x grows to the
    // patient's Left, y to Posterior), while vxp_volume.ijk_to_ras is RAS (x Right, y Anterior): RAS =
    // diag(-1, -1, 1) * LPS, so the first two rows of the matrix (and of the translation) are negated.
    // The translation is the physical point of the buffer's first voxel, which is the origin when the
    // buffered region starts at index 0.
    InputImage::PointType p0;
    image->TransformIndexToPhysicalPoint(region.GetIndex(), p0);
    double m[16] = {0.0};
    for (unsigned r = 0; r < 3; ++r) {
      const double lps_to_ras = r < 2 ? -1.0 : 1.0;  // LPS -> RAS: negate x and y
      for (unsigned c = 0; c < 3; ++c) {
        m[4 * r + c] = lps_to_ras * direction[r][c] * spacing[c];
      }
      m[4 * r + 3] = lps_to_ras * p0[r];
    }
    m[15] = 1.0;
    std::cerr << "ITK direction (LPS) rows: ";
    for (unsigned r = 0; r < 3; ++r) {
      std::cerr << (r ? "; " : "") << direction[r][0] << " " << direction[r][1] << " " << direction[r][2];
    }
    std::cerr << "\nIJK->RAS rows: ";
    for (unsigned r = 0; r < 3; ++r) {
      std::cerr << (r ? "; " : "") << m[4 * r] << " " << m[4 * r + 1] << " " << m[4 * r + 2] << " " << m[4 * r + 3];
    }
    std::cerr << "\n";

    // --- Describe ITK's buffer to the library: no copy, byte strides from the buffered region. ---
    const int64_t elem = static_cast<int64_t>(sizeof(InputImage::PixelType));
    const size_t nvox = static_cast<size_t>(size[0]) * size[1] * size[2];
    vxp_volume vol;
    std::memset(&vol, 0, sizeof vol);
    vol.struct_size = sizeof(vxp_volume);
    vol.dtype = VXP_DTYPE_I16;
    vol.data = image->GetBufferPointer();
    vol.data_len = nvox * sizeof(InputImage::PixelType);
    vol.data_offset = 0;
    for (unsigned a = 0; a < 3; ++a) {
      vol.dims[a] = size[a];
      vol.spacing[a] = spacing[a];
    }
    vol.strides[0] = elem;
    vol.strides[1] = elem * static_cast<int64_t>(size[0]);
    vol.strides[2] = elem * static_cast<int64_t>(size[0]) * static_cast<int64_t>(size[1]);
    std::memcpy(vol.ijk_to_ras, m, sizeof m);
    vol.intensity = intensity;

    // --- Engine and session. ---
    Options options;
    check(vxp_options_new(&options.p), "vxp_options_new");
    if (!ort_lib.empty()) check(vxp_options_set_ort_library(options.p, ort_lib.c_str()), "set_ort_library");
    check(vxp_options_set_model_dir(options.p, model_dir.c_str()), "set_model_dir");
    check(vxp_options_set_providers(options.p, providers.c_str()), "set_providers");
    check(vxp_options_set_threads(options.p, threads), "set_threads");
    Engine engine;
    check(vxp_engine_new(options.p, &engine.p), "vxp_engine_new");
    char provider[512];
    if (vxp_engine_provider(engine.p, provider, sizeof provider, nullptr) == VXP_RESULT_OK) {
      std::cerr << "provider: " << provider << "\n";
    }

    Session session;
    check(vxp_session_new(engine.p, &vol, &session.p), "vxp_session_new");
    // The session keeps its own 8-bit copy; ITK's buffer is not referenced after vxp_session_new.
    check(vxp_session_add_box_ijk(session.p, 1, box), "vxp_session_add_box_ijk");

    // --- The mask: an ITK image on the input's grid (spacing, origin, direction, regions). ---
    auto mask = MaskImage::New();
    mask->CopyInformation(image);
    mask->SetRegions(region);
    mask->Allocate(true);
    const int64_t mask_strides[3] = {1, static_cast<int64_t>(size[0]),
                                     static_cast<int64_t>(size[0]) * static_cast<int64_t>(size[1])};
    check(vxp_session_run(session.p, on_progress, nullptr, mask->GetBufferPointer(), nvox, mask_strides),
          "vxp_session_run");
    if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");

    size_t fg = 0;
    const unsigned char *mp = mask->GetBufferPointer();
    for (size_t v = 0; v < nvox; ++v) fg += mp[v] != 0;
    std::cerr << "foreground voxels: " << fg << "\n";

    auto writer = itk::ImageFileWriter<MaskImage>::New();
    writer->SetFileName(output_path);
    writer->SetInput(mask);
    writer->UseCompressionOn();
    writer->Update();
    std::cerr << "wrote " << output_path << "\n";
  } catch (const std::exception &e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
