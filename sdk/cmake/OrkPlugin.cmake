# ork_add_plugin(<target> SOURCES ... [NO_INSTALL]): a loadable Ork plugin (lib<target>.so) built with the flags the
# ABI rules need (hidden visibility, no unresolved symbols, unloadable), installed to lib/ork/plugins.
function(ork_add_plugin target)
  cmake_parse_arguments(P "NO_INSTALL" "" "SOURCES" ${ARGN})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE Ork::sdk)
  set_target_properties(${target} PROPERTIES PREFIX "lib" CXX_VISIBILITY_PRESET hidden C_VISIBILITY_PRESET hidden
                                             VISIBILITY_INLINES_HIDDEN ON)
  target_compile_options(${target} PRIVATE -fno-gnu-unique)
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  if(NOT P_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION lib/ork/plugins)
  endif()
endfunction()
