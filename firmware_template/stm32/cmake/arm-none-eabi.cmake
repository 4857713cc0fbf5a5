# CMake toolchain file: GNU Arm Embedded (arm-none-eabi-gcc) for Cortex-M4F / Cortex-M7.
#
#   cmake -B build -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake -DFDT_PART=STM32F446 ...
#
# The CPU flags are chosen per part in cmake/parts.cmake; this file only selects the
# cross compiler.  Set ARM_TOOLCHAIN_DIR if arm-none-eabi-gcc is not on PATH.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(ARM_TOOLCHAIN_DIR "" CACHE PATH "Directory holding arm-none-eabi-gcc (empty: use PATH)")
if(ARM_TOOLCHAIN_DIR)
  set(_tc "${ARM_TOOLCHAIN_DIR}/arm-none-eabi-")
else()
  set(_tc "arm-none-eabi-")
endif()

set(CMAKE_C_COMPILER   "${_tc}gcc")
set(CMAKE_CXX_COMPILER "${_tc}g++")
set(CMAKE_ASM_COMPILER "${_tc}gcc")
set(CMAKE_OBJCOPY      "${_tc}objcopy" CACHE FILEPATH "objcopy")
set(CMAKE_SIZE         "${_tc}size" CACHE FILEPATH "size")

# Cross compiling: try_compile must not try to link a hosted executable.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
