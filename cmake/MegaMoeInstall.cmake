# Installs the library, the public header and a CMake package config:
#   find_package(MegaMoe CONFIG REQUIRED)  ->  target MegaMoe::megamoe
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS megamoe EXPORT MegaMoeTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY native/include/megamoe DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT MegaMoeTargets NAMESPACE MegaMoe:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/MegaMoe)

configure_package_config_file(cmake/MegaMoeConfig.cmake.in
                              "${CMAKE_CURRENT_BINARY_DIR}/MegaMoeConfig.cmake"
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/MegaMoe)
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/MegaMoeConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/MegaMoeConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/MegaMoeConfigVersion.cmake"
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/MegaMoe)
