# Fails unless every snippet of guide_snippets.cc appears verbatim in docs/guide.md.
#
#   cmake -DSOURCE=examples/guide/guide_snippets.cc -DGUIDE=docs/guide.md -P check_guide.cmake
#
# A snippet is the text of a function body between a marker line "guide-snippet: NAME"
# and a marker line "guide-snippet-end" (each a `//` comment indented by two spaces),
# with the body's two-space indentation removed. Add -DDUMP=<file> to also write every
# snippet as a Markdown code block into <file>, ready to paste into the guide.
cmake_minimum_required(VERSION 3.22)

foreach(var SOURCE GUIDE)
  if(NOT EXISTS "${${var}}")
    message(FATAL_ERROR "check_guide.cmake: ${var}='${${var}}' does not exist")
  endif()
endforeach()

file(READ "${SOURCE}" rest)
file(READ "${GUIDE}" guide)
set(begin_marker "\n  // guide-snippet: ")
set(end_marker "\n  // guide-snippet-end")
string(LENGTH "${begin_marker}" begin_marker_len)

set(checked 0)
set(missing "")
while(TRUE)
  string(FIND "${rest}" "${begin_marker}" begin)
  if(begin EQUAL -1)
    break()
  endif()
  math(EXPR name_start "${begin} + ${begin_marker_len}")
  string(SUBSTRING "${rest}" ${name_start} -1 rest)
  string(FIND "${rest}" "\n" eol)
  string(SUBSTRING "${rest}" 0 ${eol} name)
  math(EXPR body_start "${eol} + 1")
  string(SUBSTRING "${rest}" ${body_start} -1 rest)

  string(FIND "${rest}" "${end_marker}" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "check_guide.cmake: snippet '${name}' has no guide-snippet-end line")
  endif()
  string(SUBSTRING "${rest}" 0 ${end} body)
  string(SUBSTRING "${rest}" ${end} -1 rest)

  # Drop one level of indentation (2 spaces) from every line.
  string(REGEX REPLACE "\n  " "\n" body "\n${body}")
  string(SUBSTRING "${body}" 1 -1 body)

  string(FIND "${guide}" "${body}" found)
  if(found EQUAL -1)
    string(APPEND missing "\n--- snippet '${name}' expected in ${GUIDE}:\n${body}")
  endif()
  if(DUMP)
    file(APPEND "${DUMP}" "<!-- ${name} -->\n```cpp\n${body}\n```\n\n")
  endif()
  math(EXPR checked "${checked} + 1")
endwhile()

if(checked EQUAL 0)
  message(FATAL_ERROR "check_guide.cmake: no snippets found in ${SOURCE}")
endif()
if(NOT missing STREQUAL "")
  message(FATAL_ERROR "check_guide.cmake: docs/guide.md is out of date with ${SOURCE}; "
                      "copy these snippets into it:${missing}")
endif()
message(STATUS "check_guide.cmake: all ${checked} snippets of ${SOURCE} appear in ${GUIDE}")
