/*
 * A forwarding PKCS#11 module that hands the real module a C_Initialize pReserved string.
 *
 * Some modules need initialization arguments (NSS softokn reads its database directory
 * from pReserved, PKCS#11 v2.40 section 5.4 leaves that field to the module), but
 * python-pkcs11 always calls C_Initialize(NULL). This library is loaded in the module's
 * place: it loads the module named by PKCS11_CONFORMANCE_MODULE, returns the module's own
 * function lists with only C_Initialize replaced, and that replacement passes
 * PKCS11_CONFORMANCE_INIT_RESERVED in pReserved (with CKF_OS_LOCKING_OK when the caller
 * gave no arguments). Every other call goes straight to the module.
 *
 * Built with -DFORWARD_INTERFACES only for a module that exports C_GetInterface, so the
 * library exports the PKCS#11 3.x entry points exactly when the module does.
 * Self-contained: the few PKCS#11 types it needs are declared here.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef void (*CK_FN)(void);
typedef struct { unsigned char major, minor; } CK_VERSION;
typedef struct {
    void *create_mutex, *destroy_mutex, *lock_mutex, *unlock_mutex;
    CK_ULONG flags;
    void *reserved;
} CK_C_INITIALIZE_ARGS;
/* A function list is its version followed by function pointers, C_Initialize first. */
typedef struct { CK_VERSION version; CK_FN fn[]; } FUNCTION_LIST;

#define CKR_OK 0UL
#define CKR_GENERAL_ERROR 5UL
#define CKR_FUNCTION_NOT_SUPPORTED 0x54UL
#define CKF_OS_LOCKING_OK 2UL
#define EXPORT __attribute__((visibility("default")))
#define MAX_FUNCTIONS 128

typedef CK_RV (*initialize_fn)(void *);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *module;
static initialize_fn real_initialize;

/* Pointers in the function list of each PKCS#11 version, after CK_VERSION. */
static size_t functions_in(CK_VERSION v)
{
    if (v.major == 2) return 68;
    if (v.major == 3 && v.minor <= 1) return 92;  /* v3.0 adds 24 functions */
    if (v.major == 3 && v.minor == 2) return 104; /* v3.2 adds 12 more */
    return 0;                                     /* unknown: left unpatched */
}

static CK_RV forward_initialize(void *args)
{
    const char *reserved = getenv("PKCS11_CONFORMANCE_INIT_RESERVED");
    CK_C_INITIALIZE_ARGS given = {0};
    if (args != NULL)
        given = *(CK_C_INITIALIZE_ARGS *)args;
    else
        given.flags = CKF_OS_LOCKING_OK;
    if (given.reserved == NULL && reserved != NULL)
        given.reserved = (void *)reserved;
    return real_initialize(&given);
}

static void *load(void)
{
    pthread_mutex_lock(&lock);
    if (module == NULL) {
        const char *path = getenv("PKCS11_CONFORMANCE_MODULE");
        if (path != NULL)
            module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    pthread_mutex_unlock(&lock);
    return module;
}

/* A copy of `list` whose C_Initialize is forward_initialize; copies live for the process. */
static void *patched(void *list)
{
    static struct { void *original; FUNCTION_LIST *copy; } made[8];
    FUNCTION_LIST *source = list;
    size_t count = functions_in(source->version);
    void *result = list;
    if (count == 0)
        return list;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        if (made[i].original == list) { result = made[i].copy; break; }
        if (made[i].original == NULL) {
            FUNCTION_LIST *copy = malloc(sizeof *copy + count * sizeof(CK_FN));
            if (copy == NULL) break;
            memcpy(copy, source, sizeof *copy + count * sizeof(CK_FN));
            real_initialize = (initialize_fn)source->fn[0];
            copy->fn[0] = (CK_FN)forward_initialize;
            made[i].original = list;
            made[i].copy = copy;
            result = copy;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return result;
}

EXPORT CK_RV C_GetFunctionList(void **list)
{
    CK_RV (*get)(void **);
    CK_RV rv;
    if (load() == NULL || (*(void **)&get = dlsym(module, "C_GetFunctionList")) == NULL)
        return CKR_GENERAL_ERROR;
    rv = get(list);
    if (rv == CKR_OK && list != NULL && *list != NULL)
        *list = patched(*list);
    return rv;
}

#ifdef FORWARD_INTERFACES
typedef struct { unsigned char *name; void *functions; CK_ULONG flags; } CK_INTERFACE;

static int is_standard(const CK_INTERFACE *interface)
{
    return interface->name != NULL && strcmp((const char *)interface->name, "PKCS 11") == 0;
}

EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE *list, CK_ULONG *count)
{
    CK_RV (*get)(CK_INTERFACE *, CK_ULONG *);
    CK_RV rv;
    if (load() == NULL || (*(void **)&get = dlsym(module, "C_GetInterfaceList")) == NULL)
        return CKR_FUNCTION_NOT_SUPPORTED;
    rv = get(list, count);
    if (rv == CKR_OK && list != NULL && count != NULL)
        for (CK_ULONG i = 0; i < *count; i++)
            if (is_standard(&list[i]))
                list[i].functions = patched(list[i].functions);
    return rv;
}

EXPORT CK_RV C_GetInterface(unsigned char *name, CK_VERSION *version,
                            CK_INTERFACE **interface, CK_ULONG flags)
{
    static CK_INTERFACE copies[8];
    CK_RV (*get)(unsigned char *, CK_VERSION *, CK_INTERFACE **, CK_ULONG);
    CK_RV rv;
    if (load() == NULL || (*(void **)&get = dlsym(module, "C_GetInterface")) == NULL)
        return CKR_FUNCTION_NOT_SUPPORTED;
    rv = get(name, version, interface, flags);
    if (rv != CKR_OK || interface == NULL || *interface == NULL || !is_standard(*interface))
        return rv;
    void *functions = patched((*interface)->functions);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
        if (copies[i].name == NULL || copies[i].functions == functions) {
            copies[i] = **interface;
            copies[i].functions = functions;
            *interface = &copies[i];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return rv;
}
#endif
