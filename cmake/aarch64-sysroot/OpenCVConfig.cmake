# OpenCV in the ARM64 sysroot (deploy/arm64/make-sysroot.sh,
# cmake/aarch64-linux-gnu.cmake with LOWBIT_ARM64_SYSROOT). Debian's
# libopencv-dev, which carries OpenCV's own OpenCVConfig.cmake, depends on all
# of OpenCV's modules (VTK, Qt, GDAL, ...); the sysroot holds only the
# core/imgproc/imgcodecs -dev packages, and this file makes the imported
# targets the engine links (opencv_<module>) for the requested components.
# A component whose libopencv_<module>.so is not in the sysroot is not found.
set(OpenCV_VERSION 4.6.0)
set(OpenCV_INCLUDE_DIRS "${CMAKE_SYSROOT}/usr/include/opencv4")
set(OpenCV_LIBS "")
set(_lowbit_opencv_deps_imgproc opencv_core)
set(_lowbit_opencv_deps_imgcodecs opencv_imgproc opencv_core)
set(_lowbit_opencv_deps_videoio opencv_imgcodecs opencv_imgproc opencv_core)
foreach(_lowbit_module IN LISTS OpenCV_FIND_COMPONENTS)
  if(NOT TARGET opencv_${_lowbit_module})
    find_library(OpenCV_${_lowbit_module}_LIBRARY NAMES opencv_${_lowbit_module})
    if(NOT OpenCV_${_lowbit_module}_LIBRARY OR NOT EXISTS "${OpenCV_INCLUDE_DIRS}/opencv2/${_lowbit_module}.hpp")
      set(OpenCV_FOUND FALSE)
      set(OpenCV_NOT_FOUND_MESSAGE
          "libopencv-${_lowbit_module}-dev (arm64) is not in the sysroot ${CMAKE_SYSROOT}: add it to deploy/arm64/make-sysroot.sh")
      return()
    endif()
    add_library(opencv_${_lowbit_module} SHARED IMPORTED)
    set_target_properties(opencv_${_lowbit_module} PROPERTIES
      IMPORTED_LOCATION "${OpenCV_${_lowbit_module}_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenCV_INCLUDE_DIRS}"
      INTERFACE_LINK_LIBRARIES "${_lowbit_opencv_deps_${_lowbit_module}}")
  endif()
  list(APPEND OpenCV_LIBS opencv_${_lowbit_module})
endforeach()
set(OpenCV_FOUND TRUE)
