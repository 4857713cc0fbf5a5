# Per-part settings: CPU flags and the memory map the linker script uses.
# To add a part, add one block here (and a row to fdt_tflm/firmware/targets.py for the
# fit check).  RAM is the one contiguous block that holds .data, .bss (the tensor arena),
# heap and stack.
set(FDT_PART "STM32F446" CACHE STRING "Target part: STM32F446, STM32F746 or STM32H743")
set_property(CACHE FDT_PART PROPERTY STRINGS STM32F446 STM32F746 STM32H743)

if(FDT_PART STREQUAL "STM32F446")
  # Cortex-M4F, 512 KB flash, 128 KB SRAM (SRAM1 + SRAM2, contiguous).
  set(FDT_CPU_FLAGS -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard)
  set(FDT_TFLM_ARCH "cortex-m4+fp")
  set(FDT_FLASH_ORIGIN 0x08000000)
  set(FDT_FLASH_SIZE 512K)
  set(FDT_RAM_ORIGIN 0x20000000)
  set(FDT_RAM_SIZE 128K)
elseif(FDT_PART STREQUAL "STM32F746")
  # Cortex-M7 (single-precision FPU), 1 MB flash, 320 KB RAM (DTCM + SRAM1 + SRAM2, contiguous).
  set(FDT_CPU_FLAGS -mcpu=cortex-m7 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard)
  set(FDT_TFLM_ARCH "cortex-m7+fp")
  set(FDT_FLASH_ORIGIN 0x08000000)
  set(FDT_FLASH_SIZE 1024K)
  set(FDT_RAM_ORIGIN 0x20000000)
  set(FDT_RAM_SIZE 320K)
elseif(FDT_PART STREQUAL "STM32H743")
  # Cortex-M7 (double-precision FPU), 2 MB flash.  1 MB RAM in total but split; the
  # largest block, AXI SRAM (512 KB at 0x24000000), holds everything here.
  set(FDT_CPU_FLAGS -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard)
  set(FDT_TFLM_ARCH "cortex-m7+fp")
  set(FDT_FLASH_ORIGIN 0x08000000)
  set(FDT_FLASH_SIZE 2048K)
  set(FDT_RAM_ORIGIN 0x24000000)
  set(FDT_RAM_SIZE 512K)
# Emulated boards (QEMU) for measurements without hardware (`fdt-tflm device-run`); the
# application runs with semihosting.  Same CPU flags as the real parts above.
elseif(FDT_PART STREQUAL "QEMU_NETDUINOPLUS2")
  # qemu-system-arm -M netduinoplus2: STM32F405, Cortex-M4F; QEMU maps 1 MB flash and
  # 192 KB SRAM (SRAM1 + SRAM2 + CCM as one block) at 0x20000000.
  set(FDT_CPU_FLAGS -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard)
  set(FDT_TFLM_ARCH "cortex-m4+fp")
  set(FDT_FLASH_ORIGIN 0x08000000)
  set(FDT_FLASH_SIZE 1024K)
  set(FDT_RAM_ORIGIN 0x20000000)
  set(FDT_RAM_SIZE 192K)
elseif(FDT_PART STREQUAL "QEMU_MPS2_AN386")
  # qemu-system-arm -M mps2-an386: Cortex-M4F, 4 MB SSRAM1 at 0 (code), 4 MB SSRAM2/3 at 0x20000000.
  set(FDT_CPU_FLAGS -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard)
  set(FDT_TFLM_ARCH "cortex-m4+fp")
  set(FDT_FLASH_ORIGIN 0x00000000)
  set(FDT_FLASH_SIZE 4096K)
  set(FDT_RAM_ORIGIN 0x20000000)
  set(FDT_RAM_SIZE 4096K)
elseif(FDT_PART STREQUAL "QEMU_MPS2_AN505")
  # qemu-system-arm -M mps2-an505: Cortex-M33 with FPU and DSP, starting in the secure state:
  # secure aliases of SSRAM1 (4 MB at 0x10000000, the secure vector table) and of SSRAM2/3
  # (2 x 2 MB, contiguous at 0x38000000).
  set(FDT_CPU_FLAGS -mcpu=cortex-m33 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard)
  set(FDT_TFLM_ARCH "cortex-m33")
  set(FDT_FLASH_ORIGIN 0x10000000)
  set(FDT_FLASH_SIZE 4096K)
  set(FDT_RAM_ORIGIN 0x38000000)
  set(FDT_RAM_SIZE 4096K)
else()
  message(FATAL_ERROR "Unknown FDT_PART '${FDT_PART}'. Add it to cmake/parts.cmake.")
endif()

set(FDT_STACK_SIZE 0x2000 CACHE STRING "Main stack size in bytes")
set(FDT_HEAP_SIZE 0x1000 CACHE STRING "Minimum heap size in bytes (newlib stdio buffers)")
