/* C support compiled into the ahead-of-time kernel module (robustrl/_kernels/aot.py): the
 * LAPACK/BLAS symbols of robustrl/_kernels/lapack.py, and a memoised unpickle (below).
 *
 * Under the JIT, lapack.py registers each
 * `robustrl_<name>` symbol with LLVM as the address of SciPy's cython_lapack/cython_blas
 * routine; a compiled extension module has no such registry, so these trampolines resolve
 * the same SciPy routine on first use (through the capsule SciPy exports in `__pyx_capi__`)
 * and call it: the same routine, so the same numbers as the JIT.
 *
 * The kernels are called from Python and never release the GIL, so the Python C API is
 * safe here and the first-use lookup needs no lock. */
#include <Python.h>

static void *robustrl_lookup(const char *module, const char *name)
{
    void *ptr = NULL;
    PyObject *mod = PyImport_ImportModule(module);
    if (mod != NULL) {
        PyObject *capi = PyObject_GetAttrString(mod, "__pyx_capi__");
        Py_DECREF(mod);
        if (capi != NULL) {
            PyObject *capsule = PyDict_GetItemString(capi, name);
            if (capsule != NULL)
                ptr = PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule));
            Py_DECREF(capi);
        }
    }
    if (ptr == NULL) {
        /* lapack.py, imported before this module is used, resolves the same routines, so
           this is unreachable short of a broken SciPy; a kernel cannot raise. */
        if (PyErr_Occurred())
            PyErr_Print();
        Py_FatalError("robustrl ahead-of-time kernels: a SciPy LAPACK/BLAS routine is missing");
    }
    return ptr;
}

#define ROBUSTRL_SHIM(NAME, MODULE, PARAMS, ARGS)                                 \
    typedef void (*NAME##_fn) PARAMS;                                            \
    static NAME##_fn NAME##_ptr = NULL;                                          \
    void robustrl_##NAME PARAMS                                                  \
    {                                                                            \
        if (NAME##_ptr == NULL)                                                  \
            NAME##_ptr = (NAME##_fn) robustrl_lookup(MODULE, #NAME);             \
        NAME##_ptr ARGS;                                                         \
    }

ROBUSTRL_SHIM(dpotrf, "scipy.linalg.cython_lapack",
              (char *uplo, int *n, double *a, int *lda, int *info),
              (uplo, n, a, lda, info))
ROBUSTRL_SHIM(dpotri, "scipy.linalg.cython_lapack",
              (char *uplo, int *n, double *a, int *lda, int *info),
              (uplo, n, a, lda, info))
ROBUSTRL_SHIM(dpotrs, "scipy.linalg.cython_lapack",
              (char *uplo, int *n, int *nrhs, double *a, int *lda, double *b, int *ldb,
               int *info),
              (uplo, n, nrhs, a, lda, b, ldb, info))
ROBUSTRL_SHIM(dsyrk, "scipy.linalg.cython_blas",
              (char *uplo, char *trans, int *n, int *k, double *alpha, double *a, int *lda,
               double *beta, double *c, int *ldc),
              (uplo, trans, n, k, alpha, a, lda, beta, c, ldc))

/* Unpickling with a memo, as the JIT does. Boxing an array (a kernel's return value) embeds
 * the array's Python type as pickled bytes; the JIT's `numba_unpickle` memoises the object by
 * the address of those bytes, but the copy compiled into an ahead-of-time module calls
 * `pickle.loads` every time (0.4 us per returned array). The pickled constants live at fixed
 * addresses in this module, so the same memo is exact here. aot.py points the generated code
 * at this function instead of `numba_unpickle`. */
extern PyObject *numba_unpickle(const char *data, int n, const char *hashed);

#define ROBUSTRL_MEMO_SIZE 64
static const char *robustrl_memo_data[ROBUSTRL_MEMO_SIZE];
static PyObject *robustrl_memo_obj[ROBUSTRL_MEMO_SIZE];
static int robustrl_memo_len = 0;

PyObject *robustrl_unpickle(const char *data, int n, const char *hashed)
{
    PyObject *obj;
    int i;
    for (i = 0; i < robustrl_memo_len; i++) {
        if (robustrl_memo_data[i] == data) {
            Py_INCREF(robustrl_memo_obj[i]);
            return robustrl_memo_obj[i];
        }
    }
    obj = numba_unpickle(data, n, hashed);
    if (obj != NULL && robustrl_memo_len < ROBUSTRL_MEMO_SIZE) {
        Py_INCREF(obj);  /* the memo's own reference */
        robustrl_memo_data[robustrl_memo_len] = data;
        robustrl_memo_obj[robustrl_memo_len] = obj;
        robustrl_memo_len++;
    }
    return obj;
}
