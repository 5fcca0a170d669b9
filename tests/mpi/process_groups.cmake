tessera_add_mpi_test(process_groups_test NP 8 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mpi/process_groups_test.cpp)
