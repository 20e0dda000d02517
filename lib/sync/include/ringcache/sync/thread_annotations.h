// Clang thread-safety annotations (no-ops on other compilers), so that a clang build
// with -Wthread-safety checks the locking rules written next to each field.
#pragma once

#if defined(__clang__)
#define RC_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define RC_THREAD_ANNOTATION(x)
#endif

#define RC_CAPABILITY(x) RC_THREAD_ANNOTATION(capability(x))
#define RC_SCOPED_CAPABILITY RC_THREAD_ANNOTATION(scoped_lockable)
#define RC_GUARDED_BY(x) RC_THREAD_ANNOTATION(guarded_by(x))
#define RC_PT_GUARDED_BY(x) RC_THREAD_ANNOTATION(pt_guarded_by(x))
#define RC_REQUIRES(...) RC_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define RC_EXCLUDES(...) RC_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define RC_ACQUIRE(...) RC_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RC_RELEASE(...) RC_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RC_NO_THREAD_SAFETY_ANALYSIS RC_THREAD_ANNOTATION(no_thread_safety_analysis)
