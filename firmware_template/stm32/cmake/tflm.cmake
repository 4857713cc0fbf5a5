# TensorFlow Lite Micro as a static library `tflm`.
#
# Two ways to get the sources (see docs/firmware.md):
#  1. -DTFLM_DIR=/path/to/tflm_tree : a tree made by tflite-micro's
#     tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py (recommended:
#     offline, reproducible);
#  2. nothing: tflite-micro is fetched at configure time (FetchContent, git tag
#     FDT_TFLM_GIT_TAG) and create_tflm_tree.py is run into the build directory.
#     Needs git, python3, make and network access on the first configure.
# FDT_KERNELS=cmsis-nn builds TFLM's CMSIS-NN optimised kernels instead of the
# reference ones (the tree must have been generated with OPTIMIZED_KERNEL_DIR=cmsis_nn).

set(TFLM_DIR "" CACHE PATH "TFLM source tree (output of create_tflm_tree.py); empty: fetch")
set(FDT_TFLM_GIT_TAG "90b983c2b3f1480642e040bbd2ddb37b998f3424" CACHE STRING
    "tflite-micro commit/tag to fetch when TFLM_DIR is empty")
set(FDT_KERNELS "reference" CACHE STRING "TFLM kernels: reference or cmsis-nn")
set_property(CACHE FDT_KERNELS PROPERTY STRINGS reference cmsis-nn)

if(NOT TFLM_DIR)
  include(FetchContent)
  FetchContent_Declare(tflite_micro
    GIT_REPOSITORY https://github.com/tensorflow/tflite-micro.git
    GIT_TAG ${FDT_TFLM_GIT_TAG})
  FetchContent_MakeAvailable(tflite_micro)
  set(_tree "${CMAKE_BINARY_DIR}/tflm_tree_${FDT_KERNELS}")
  if(NOT EXISTS "${_tree}/tensorflow")
    find_package(Python3 REQUIRED COMPONENTS Interpreter)
    get_filename_component(_tc_dir "${CMAKE_CXX_COMPILER}" DIRECTORY)
    set(_opts "TARGET=cortex_m_generic TARGET_ARCH=${FDT_TFLM_ARCH} TARGET_TOOLCHAIN_ROOT=${_tc_dir}/")
    if(FDT_KERNELS STREQUAL "cmsis-nn")
      string(APPEND _opts " OPTIMIZED_KERNEL_DIR=cmsis_nn")
    endif()
    message(STATUS "fdt: generating the TFLM tree (${_opts}) in ${_tree}")
    execute_process(
      COMMAND ${Python3_EXECUTABLE} tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py
              --makefile_options=${_opts} "${_tree}"
      WORKING_DIRECTORY "${tflite_micro_SOURCE_DIR}"
      RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "create_tflm_tree.py failed (${_rc}); generate a tree by hand and pass -DTFLM_DIR")
    endif()
  endif()
  set(TFLM_DIR "${_tree}")
endif()

if(NOT EXISTS "${TFLM_DIR}/tensorflow/lite/micro/micro_interpreter.h")
  message(FATAL_ERROR "TFLM_DIR=${TFLM_DIR} is not a TFLM tree (no tensorflow/lite/micro/micro_interpreter.h)")
endif()

file(GLOB_RECURSE TFLM_SOURCES CONFIGURE_DEPENDS
  "${TFLM_DIR}/tensorflow/*.cc" "${TFLM_DIR}/tensorflow/*.c"
  "${TFLM_DIR}/signal/*.cc" "${TFLM_DIR}/signal/*.c"
  "${TFLM_DIR}/third_party/*.cc" "${TFLM_DIR}/third_party/*.c")
list(FILTER TFLM_SOURCES EXCLUDE REGEX "(_test\\.cc|/examples/|/benchmarks/|/tools/|/python/)")

add_library(tflm STATIC ${TFLM_SOURCES})
set(_tflm_includes "${TFLM_DIR}")
foreach(sub third_party/flatbuffers/include third_party/gemmlowp third_party/ruy third_party/kissfft
            third_party/cmsis_nn third_party/cmsis_nn/Include third_party/cmsis/CMSIS/Core/Include)
  if(EXISTS "${TFLM_DIR}/${sub}")
    list(APPEND _tflm_includes "${TFLM_DIR}/${sub}")
  endif()
endforeach()
target_include_directories(tflm SYSTEM PUBLIC ${_tflm_includes})
target_compile_definitions(tflm PUBLIC TF_LITE_STATIC_MEMORY TF_LITE_DISABLE_X86_NEON TF_LITE_MCU_DEBUG_LOG)
if(FDT_KERNELS STREQUAL "cmsis-nn")
  target_compile_definitions(tflm PUBLIC CMSIS_NN)
endif()
if(EXISTS "${TFLM_DIR}/tensorflow/lite/micro/cortex_m_generic/debug_log.cc")
  # The cortex_m_generic target prints through a callback the application registers.
  target_compile_definitions(tflm PUBLIC FDT_TFLM_LOG_CALLBACK)
  # Its micro_time.cc reads the DWT cycle counter through CMSIS device headers the tree
  # does not ship; PROJECT_GENERATION selects its stub (the template does not time ops).
  target_compile_definitions(tflm PRIVATE PROJECT_GENERATION)
endif()
target_compile_options(tflm PRIVATE -w "$<$<COMPILE_LANGUAGE:CXX>:-fno-rtti;-fno-exceptions;-fno-threadsafe-statics>")
