# r2rec_target_warnings(<target>): warnings on for our own code. Third-party headers are SYSTEM includes,
# so their warnings stay out of our build log.
function(r2rec_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()
