/* The reader's hot loops in C: the structure guard (1), the common cases of classifying a
 * ChatGPT message (2), the walk of a plain conversation tree (3), and a batch's texts encoded
 * to UTF-8 off the parser's thread (4). The second and third are shortcuts of chatgpt.py's
 * rules that answer None for anything not plain.
 *
 * 1. StructureGuard, over a JSON byte stream, run before ijson sees the bytes.
 *
 * ijson computes, for every event, the "prefix" of its path ("item.mapping.<id>.message..."):
 * a new string per key and per array, as long as the path. A file of a few hundred KB made of
 * nested '[' or of very long keys therefore costs time and memory quadratic in its size, inside
 * one read of the parser, where Python cannot intervene. This scanner tracks, in C and without
 * the GIL, what ijson would build: the nesting depth, the length of that path, and how many
 * containers have been opened, so the reader can refuse such a file at the byte that crosses a
 * limit. It does not validate JSON (yajl does); on invalid input it only has to stay bounded.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_LEVELS 4096 /* the largest max_depth accepted */

typedef struct {
    PyObject_HEAD
    int max_depth;
    Py_ssize_t max_path;
    /* state carried from one block to the next */
    int in_string;
    int escaped;       /* inside a string, the previous byte was an unescaped backslash */
    int string_is_key;
    Py_ssize_t string_length;
    int expect_key;    /* inside an object, before a member's key */
    int depth;
    /* per open container: 1 for an object, 0 for an array; the length of its own path, and of
     * the path its members or items are at (its path plus ".<key>" or ".item") */
    unsigned char is_object[MAX_LEVELS];
    Py_ssize_t path[MAX_LEVELS];
    Py_ssize_t child_path[MAX_LEVELS];
    long long containers; /* opened so far */
    long long offset;     /* bytes scanned so far */
    long long error_offset;
    /* scan_async: one block scanned on a thread of the guard's own, without the GIL */
    int worker_started, has_work, work_done, stopping;
    pthread_t worker;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    Py_buffer work;
    int work_status;
    Py_ssize_t work_stopped_at;
} Guard;

enum { GUARD_OK = 0, GUARD_TOO_DEEP = 1, GUARD_PATH_TOO_LONG = 2 };

static int
Guard_init(Guard *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"max_depth", "max_path", NULL};
    int max_depth = 128;
    Py_ssize_t max_path = 1024;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|in", keywords, &max_depth, &max_path)) {
        return -1;
    }
    if (max_depth < 1 || max_depth >= MAX_LEVELS || max_path < 1) {
        PyErr_SetString(PyExc_ValueError, "max_depth must be 1-4095 and max_path positive");
        return -1;
    }
    self->max_depth = max_depth;
    self->max_path = max_path;
    self->in_string = self->escaped = self->string_is_key = self->expect_key = 0;
    self->string_length = 0;
    self->depth = 0;
    self->containers = self->offset = 0;
    self->error_offset = -1;
    return 0;
}

/* The path length of a new value here: its container's child path, or 0 at the top. */
static inline Py_ssize_t
value_path(const Guard *g)
{
    return g->depth ? g->child_path[g->depth - 1] : 0;
}

/* The index of the next '"' or '\\' at or after i (size if none): sixteen bytes at a time where
 * SSE2 is there (every x86-64), else byte by byte for the first few (keys, ids and labels are
 * short) and then with memchr (texts are most of an export's bytes). *quote_at remembers the
 * next quote found, so a long string full of escapes is still one pass. */
static inline Py_ssize_t
next_quote_or_backslash(const unsigned char *data, Py_ssize_t i, Py_ssize_t size,
                        Py_ssize_t *quote_at)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    while (i + 16 <= size) {
        __m128i chunk = _mm_loadu_si128((const __m128i *)(data + i));
        int mask = _mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(chunk, quote), _mm_cmpeq_epi8(chunk, backslash)));
        if (mask) {
            return i + __builtin_ctz((unsigned int)mask);
        }
        i += 16;
    }
    while (i < size && data[i] != '"' && data[i] != '\\') {
        i++;
    }
    (void)quote_at;
    return i;
#else
    Py_ssize_t short_end = size - i > 32 ? i + 32 : size;
    while (i < short_end && data[i] != '"' && data[i] != '\\') {
        i++;
    }
    if (i < short_end || i == size) {
        return i;
    }
    if (*quote_at < i) {
        const unsigned char *found = memchr(data + i, '"', (size_t)(size - i));
        *quote_at = found ? found - data : size;
    }
    const unsigned char *found = memchr(data + i, '\\', (size_t)(*quote_at - i));
    return found ? found - data : *quote_at;
#endif
}

static int
scan(Guard *g, const unsigned char *data, Py_ssize_t size, Py_ssize_t *stopped_at)
{
    Py_ssize_t i = 0;
    Py_ssize_t quote_at = -1; /* index of the next quote at or after i, if not below i */
    while (i < size) {
        if (g->in_string) {
            /* a key's bytes lengthen the path: refuse at the byte that passes the limit */
            Py_ssize_t room = g->string_is_key
                ? g->max_path - (g->path[g->depth - 1] + 1 + g->string_length)
                : PY_SSIZE_T_MAX;
            if (g->escaped) { /* the byte after a backslash, whatever it is */
                if (room < 1) {
                    *stopped_at = i + 1;
                    return GUARD_PATH_TOO_LONG;
                }
                g->escaped = 0;
                g->string_length++;
                i++;
                continue;
            }
            Py_ssize_t stop = next_quote_or_backslash(data, i, size, &quote_at);
            int backslash = stop < size && data[stop] == '\\';
            Py_ssize_t span = stop - i + backslash;
            if (span > room) {
                *stopped_at = i + room + 1;
                return GUARD_PATH_TOO_LONG;
            }
            g->string_length += span;
            i += span;
            if (backslash) {
                g->escaped = 1;
                continue;
            }
            if (i == size) {
                break;
            }
            i++; /* the closing quote */
            g->in_string = 0;
            if (g->string_is_key) {
                Py_ssize_t top = g->depth - 1;
                g->child_path[top] = g->path[top] + 1 + g->string_length;
                g->expect_key = 0;
            }
            continue;
        }
        unsigned char c = data[i++];
        switch (c) {
        case '"':
            g->in_string = 1;
            g->string_length = 0;
            g->string_is_key = g->depth > 0 && g->is_object[g->depth - 1] && g->expect_key;
            break;
        case '{':
        case '[': {
            if (g->depth >= g->max_depth) {
                *stopped_at = i;
                return GUARD_TOO_DEEP;
            }
            Py_ssize_t own = value_path(g);
            int level = g->depth++;
            g->is_object[level] = c == '{';
            g->path[level] = own;
            g->containers++;
            if (c == '{') {
                g->child_path[level] = own; /* until its first key */
                g->expect_key = 1;
            } else {
                g->child_path[level] = own + 5; /* ".item" */
                g->expect_key = 0;
                if (own + 5 > g->max_path) {
                    *stopped_at = i;
                    return GUARD_PATH_TOO_LONG;
                }
            }
            break;
        }
        case '}':
        case ']':
            if (g->depth > 0) {
                g->depth--;
            }
            g->expect_key = 0;
            break;
        case ',':
            g->expect_key = g->depth > 0 && g->is_object[g->depth - 1];
            break;
        default:
            break; /* whitespace, ':', numbers, literals, or invalid bytes yajl will refuse */
        }
    }
    *stopped_at = i;
    return GUARD_OK;
}

PyDoc_STRVAR(Guard_scan_doc,
"scan(data) -> int\n\n"
"Scan the next bytes of the stream: 0 if every limit holds, 1 if the nesting went deeper than\n"
"max_depth, 2 if a path grew longer than max_path; error_offset is then the stream offset of\n"
"the byte that crossed it. Runs without the GIL.");

static void
finish(Guard *self, int status, Py_ssize_t stopped_at)
{
    if (status != GUARD_OK) {
        self->error_offset = self->offset + stopped_at - 1;
    }
    self->offset += stopped_at;
}

static PyObject *
Guard_scan(Guard *self, PyObject *arg)
{
    if (self->has_work) {
        PyErr_SetString(PyExc_RuntimeError, "scan() while a scan_async() is not waited for");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t stopped_at = 0;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = scan(self, (const unsigned char *)view.buf, view.len, &stopped_at);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    finish(self, status, stopped_at);
    return PyLong_FromLong(status);
}

static void *
worker_main(void *arg)
{
    Guard *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!(self->has_work && !self->work_done) && !self->stopping) {
            pthread_cond_wait(&self->changed, &self->lock);
        }
        if (self->stopping) {
            break;
        }
        pthread_mutex_unlock(&self->lock);
        Py_ssize_t stopped_at = 0;
        int status = scan(self, self->work.buf, self->work.len, &stopped_at);
        pthread_mutex_lock(&self->lock);
        self->work_status = status;
        self->work_stopped_at = stopped_at;
        self->work_done = 1;
        pthread_cond_broadcast(&self->changed);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

PyDoc_STRVAR(Guard_scan_async_doc,
"scan_async(data) -> None\n\n"
"Start scanning the next bytes on the guard's own thread (no GIL is needed there), so the\n"
"scan of one block runs while the parser reads the one before it; wait() gives the result.");

static PyObject *
Guard_scan_async(Guard *self, PyObject *arg)
{
    if (self->has_work) {
        PyErr_SetString(PyExc_RuntimeError, "scan_async() while one is not waited for");
        return NULL;
    }
    if (!self->worker_started) {
        if (pthread_mutex_init(&self->lock, NULL) != 0 ||
            pthread_cond_init(&self->changed, NULL) != 0 ||
            pthread_create(&self->worker, NULL, worker_main, self) != 0) {
            PyErr_SetString(PyExc_OSError, "could not start the guard's thread");
            return NULL;
        }
        self->worker_started = 1;
    }
    if (PyObject_GetBuffer(arg, &self->work, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    pthread_mutex_lock(&self->lock);
    self->work_done = 0;
    self->has_work = 1;
    pthread_cond_broadcast(&self->changed);
    pthread_mutex_unlock(&self->lock);
    Py_RETURN_NONE;
}

static int
wait_for_work(Guard *self)
{
    int status;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    while (!self->work_done) {
        pthread_cond_wait(&self->changed, &self->lock);
    }
    self->has_work = 0;
    status = self->work_status;
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&self->work);
    finish(self, status, self->work_stopped_at);
    return status;
}

PyDoc_STRVAR(Guard_wait_doc,
"wait() -> (status, containers)\n\n"
"The result of the last scan_async(): its status as scan() gives it, and the containers\n"
"opened up to the end of that block.");

static PyObject *
Guard_wait(Guard *self, PyObject *unused)
{
    if (!self->has_work) {
        PyErr_SetString(PyExc_RuntimeError, "wait() without a scan_async()");
        return NULL;
    }
    int status = wait_for_work(self);
    return Py_BuildValue("iL", status, self->containers);
}

static void
Guard_dealloc(Guard *self)
{
    if (self->worker_started) {
        if (self->has_work) {
            wait_for_work(self);
        }
        pthread_mutex_lock(&self->lock);
        self->stopping = 1;
        pthread_cond_broadcast(&self->changed);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->worker, NULL);
        pthread_cond_destroy(&self->changed);
        pthread_mutex_destroy(&self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Guard_methods[] = {
    {"scan", (PyCFunction)Guard_scan, METH_O, Guard_scan_doc},
    {"scan_async", (PyCFunction)Guard_scan_async, METH_O, Guard_scan_async_doc},
    {"wait", (PyCFunction)Guard_wait, METH_NOARGS, Guard_wait_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *
Guard_get_containers(Guard *self, void *closure)
{
    return PyLong_FromLongLong(self->containers);
}

static PyObject *
Guard_get_offset(Guard *self, void *closure)
{
    return PyLong_FromLongLong(self->offset);
}

static PyObject *
Guard_get_error_offset(Guard *self, void *closure)
{
    return PyLong_FromLongLong(self->error_offset);
}

static PyObject *
Guard_get_depth(Guard *self, void *closure)
{
    return PyLong_FromLong(self->depth);
}

static PyGetSetDef Guard_getset[] = {
    {"containers", (getter)Guard_get_containers, NULL, "objects and arrays opened so far", NULL},
    {"offset", (getter)Guard_get_offset, NULL, "bytes scanned so far", NULL},
    {"error_offset", (getter)Guard_get_error_offset, NULL,
     "stream offset of the byte that crossed a limit, or -1", NULL},
    {"depth", (getter)Guard_get_depth, NULL, "containers open now", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject GuardType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "soulprint_pipeline.export._native.StructureGuard",
    .tp_doc = PyDoc_STR("StructureGuard(max_depth=128, max_path=1024): see the module doc."),
    .tp_basicsize = sizeof(Guard),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Guard_dealloc,
    .tp_init = (initproc)Guard_init,
    .tp_methods = Guard_methods,
    .tp_getset = Guard_getset,
};

/* 2. common_case(message): the common cases of chatgpt.classify, which it calls first.
 *
 * A plain text turn between the person and the assistant (content_type "text", one string
 * part, to everyone, not hidden) gives its Message; a message to everyone, not hidden, whose
 * content type the person never sees (thoughts, reasoning recaps...) gives its skip reason; a
 * message marked hidden (the system prompt every conversation opens with) and an assistant's
 * call to a tool give theirs. Anything else, including every shape that is odd in any way, is
 * None, and chatgpt.classify decides in Python; so these are exact shortcuts of its branches,
 * taken in its order, never a second set of rules. */

static PyObject *message_type = NULL; /* rows.Message, a tuple subclass */
static PyObject *never_visible = NULL; /* {content type: skip reason} */
static PyObject *reason_hidden = NULL, *reason_not_for_the_person = NULL;
static PyObject *str_unknown_prefix, *one;
static PyObject *str_id, *str_role, *str_content, *str_author, *str_metadata, *str_recipient,
    *str_create_time, *str_content_type, *str_parts, *str_hidden, *str_model_slug;

static inline PyObject *
member(PyObject *dict, PyObject *key)
{
    return dict != NULL && PyDict_Check(dict) ? PyDict_GetItemWithError(dict, key) : NULL;
}

static int
is_ascii_string(PyObject *value, const char *text)
{
    return value != NULL && PyUnicode_CheckExact(value) &&
           PyUnicode_CompareWithASCIIString(value, text) == 0;
}

/* A Message (tuple.__new__(Message, fields), as chatgpt's _new_message); steals fields. */
static PyObject *
new_message(PyObject *fields)
{
    if (fields == NULL) {
        return NULL;
    }
    PyObject *args = PyTuple_Pack(1, fields);
    Py_DECREF(fields);
    if (args == NULL) {
        return NULL;
    }
    PyObject *message = PyTuple_Type.tp_new((PyTypeObject *)message_type, args, NULL);
    Py_DECREF(args);
    return message;
}

static PyObject *
common_case(PyObject *module, PyObject *message)
{
    if (message_type == NULL || !PyDict_Check(message)) {
        Py_RETURN_NONE;
    }
    PyObject *content = member(message, str_content);
    PyObject *author = member(message, str_author);
    PyObject *metadata = member(message, str_metadata);
    PyObject *recipient = member(message, str_recipient);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (content == NULL || !PyDict_Check(content) || author == NULL || !PyDict_Check(author)) {
        Py_RETURN_NONE;
    }
    PyObject *content_type = member(content, str_content_type);
    PyObject *role = member(author, str_role);
    if (content_type == NULL || !PyUnicode_CheckExact(content_type) || role == NULL ||
        !PyUnicode_CheckExact(role)) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    /* classify's first branches: the profile signals (custom instructions, memories) */
    if (is_ascii_string(content_type, "user_editable_context") ||
        is_ascii_string(content_type, "model_editable_context") ||
        is_ascii_string(recipient, "bio")) {
        Py_RETURN_NONE;
    }
    if (metadata != NULL && !PyDict_Check(metadata)) {
        metadata = NULL; /* damaged: read as empty, as classify does */
    }
    PyObject *hidden = member(metadata, str_hidden);
    if (hidden == Py_True) {
        return Py_NewRef(reason_hidden);
    }
    if (hidden != NULL && hidden != Py_False && hidden != Py_None) {
        Py_RETURN_NONE; /* truthy in some other way: Python decides */
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (is_ascii_string(role, "system")) {
        Py_RETURN_NONE; /* a system message, or one the person wrote as such */
    }
    if (recipient != NULL && recipient != Py_None &&
        !(PyUnicode_CheckExact(recipient) &&
          (PyUnicode_GET_LENGTH(recipient) == 0 ||
           PyUnicode_CompareWithASCIIString(recipient, "all") == 0))) {
        if (PyUnicode_CheckExact(recipient)) {
            return Py_NewRef(reason_not_for_the_person); /* a call to a tool */
        }
        Py_RETURN_NONE; /* an odd value: Python decides */
    }
    PyObject *skip_reason = NULL;
    if (PyUnicode_CompareWithASCIIString(content_type, "text") != 0) {
        skip_reason = PyDict_GetItemWithError(never_visible, content_type);
        if (skip_reason == NULL) {
            return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
        }
    }
    int assistant = is_ascii_string(role, "assistant");
    if (!assistant && !is_ascii_string(role, "user") &&
        !(skip_reason != NULL && is_ascii_string(role, "tool"))) {
        Py_RETURN_NONE;
    }
    if (skip_reason != NULL) {
        return Py_NewRef(skip_reason);
    }
    PyObject *created = member(message, str_create_time);
    if (created == NULL) {
        created = Py_None;
    } else if (created != Py_None && !PyFloat_CheckExact(created)) {
        Py_RETURN_NONE; /* an integer, a string...: rows.number decides */
    }
    PyObject *parts = member(content, str_parts);
    if (parts == NULL || !PyList_CheckExact(parts) || PyList_GET_SIZE(parts) != 1) {
        Py_RETURN_NONE;
    }
    PyObject *text = PyList_GET_ITEM(parts, 0);
    if (!PyUnicode_CheckExact(text) || PyUnicode_GET_LENGTH(text) == 0 ||
        Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(text, 0))) {
        Py_RETURN_NONE; /* empty or blank-looking: Python tells which */
    }
    PyObject *slug = assistant ? member(metadata, str_model_slug) : NULL;
    PyObject *message_id = member(message, str_id);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *fields = PyTuple_Pack(6, message_id ? message_id : Py_None, role, content_type,
                                    text, created, slug ? slug : Py_None);
    return new_message(fields);
}

/* 3. branch_messages(mapping, current_node, classify, skipped): chatgpt.linearize's loop.
 *
 * Walks a plain mapping from current_node back to the root, classifies each node's message
 * (common_case, else the Python classify) and returns the visible messages in order, counting
 * the skipped ones into the skipped Counter. Returns None, having counted nothing, whenever
 * the Python walk has something to decide: a current node missing from the mapping (the
 * newest leaf), a cycle, a compacted or odd node, an unknown content type, an id that is not
 * a string. */

static PyObject *str_message, *str_parent;

static PyObject *
with_message_id(PyObject *result, PyObject *node_id)
{
    PyObject *fields = PyTuple_New(PyTuple_GET_SIZE(result));
    if (fields == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(result); k++) {
        PyObject *value = k == 0 ? node_id : PyTuple_GET_ITEM(result, k);
        PyTuple_SET_ITEM(fields, k, Py_NewRef(value));
    }
    return new_message(fields);
}

static PyObject *
branch_messages(PyObject *module, PyObject *args)
{
    PyObject *mapping, *current, *classify, *skipped;
    if (!PyArg_ParseTuple(args, "OOOO", &mapping, &current, &classify, &skipped)) {
        return NULL;
    }
    if (message_type == NULL || !PyDict_CheckExact(mapping) || !PyUnicode_CheckExact(current) ||
        !PyDict_Check(skipped)) {
        Py_RETURN_NONE;
    }
    PyObject *node = PyDict_GetItemWithError(mapping, current);
    if (node == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    Py_ssize_t limit = PyDict_GET_SIZE(mapping);
    PyObject *path = PyList_New(0); /* (node id, node) from the leaf up, borrowed from mapping */
    PyObject *results = NULL, *messages = NULL;
    if (path == NULL) {
        return NULL;
    }
    PyObject *node_id = current;
    while (node != NULL) {
        if (!PyDict_CheckExact(node)) {
            if (PyDict_Check(node)) {
                goto defer; /* a dict subclass: the Python walk */
            }
            break; /* not an object: the branch ends here, as in active_path */
        }
        if (PyList_GET_SIZE(path) == limit) {
            goto defer; /* a cycle */
        }
        PyObject *pair = PyTuple_Pack(2, node_id, node);
        if (pair == NULL || PyList_Append(path, pair) < 0) {
            Py_XDECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
        node_id = PyDict_GetItemWithError(node, str_parent);
        if (node_id == NULL || !PyUnicode_Check(node_id)) {
            if (PyErr_Occurred()) {
                goto error;
            }
            break;
        }
        node = PyDict_GetItemWithError(mapping, node_id);
        if (node == NULL && PyErr_Occurred()) {
            goto error;
        }
    }
    /* classify, root first; nothing is counted until the whole branch is known to be plain */
    results = PyList_New(0);
    messages = PyList_New(0);
    if (results == NULL || messages == NULL) {
        goto error;
    }
    for (Py_ssize_t k = PyList_GET_SIZE(path) - 1; k >= 0; k--) {
        PyObject *pair = PyList_GET_ITEM(path, k);
        PyObject *message = PyDict_GetItemWithError(PyTuple_GET_ITEM(pair, 1), str_message);
        if (message == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            continue;
        }
        if (!PyDict_Check(message)) {
            continue;
        }
        PyObject *result = common_case(module, message);
        if (result == Py_None) {
            Py_DECREF(result);
            result = PyObject_CallOneArg(classify, message);
        }
        if (result == NULL) {
            goto error;
        }
        if (PyUnicode_Check(result)) {
            int unknown = PyUnicode_Tailmatch(result, str_unknown_prefix, 0, PY_SSIZE_T_MAX, -1);
            if (unknown != 0 || PyList_Append(results, result) < 0) {
                Py_DECREF(result);
                if (unknown == 1) {
                    goto defer;
                }
                goto error;
            }
            Py_DECREF(result);
            continue;
        }
        if (result == Py_None) {
            Py_DECREF(result);
            continue;
        }
        PyObject *message_id = PyTuple_GET_ITEM(result, 0);
        if (message_id == Py_None) {
            Py_SETREF(result, with_message_id(result, PyTuple_GET_ITEM(pair, 0)));
            if (result == NULL) {
                goto error;
            }
        } else if (!PyUnicode_CheckExact(message_id)) {
            Py_DECREF(result);
            goto defer; /* a number, or damage: id_text decides */
        }
        int appended = PyList_Append(messages, result);
        Py_DECREF(result);
        if (appended < 0) {
            goto error;
        }
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(results); k++) {
        PyObject *reason = PyList_GET_ITEM(results, k);
        PyObject *count = PyDict_GetItemWithError(skipped, reason);
        if (count == NULL && PyErr_Occurred()) {
            goto error;
        }
        PyObject *more = count ? PyNumber_Add(count, one) : Py_NewRef(one);
        if (more == NULL || PyDict_SetItem(skipped, reason, more) < 0) {
            Py_XDECREF(more);
            goto error;
        }
        Py_DECREF(more);
    }
    Py_DECREF(path);
    Py_DECREF(results);
    return messages;
defer:
    Py_DECREF(path);
    Py_XDECREF(results);
    Py_XDECREF(messages);
    Py_RETURN_NONE;
error:
    Py_DECREF(path);
    Py_XDECREF(results);
    Py_XDECREF(messages);
    return NULL;
}

/* 4. utf8_texts(texts): a batch's texts as one UTF-8 buffer and its offsets, encoded without
 * the GIL, so a thread can encode one batch while the parser fills the next (rows.RowBatcher).
 * str.encode would do the same under the GIL; ijson's strs hold no surrogates (yajl writes '?'
 * for a lone one), but one here is written as U+FFFD, so the column is always valid UTF-8. */

typedef struct {
    int kind; /* 0 for UTF-8 already (bytes, or an ASCII str), else PyUnicode's kind */
    const void *data;
    Py_ssize_t length; /* bytes for kind 0, else characters */
} Text;

static inline unsigned char *
put_code_point(unsigned char *out, Py_UCS4 c)
{
    if (c < 0x80) {
        *out++ = (unsigned char)c;
    } else if (c < 0x800) {
        *out++ = (unsigned char)(0xC0 | (c >> 6));
        *out++ = (unsigned char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD;
        }
        *out++ = (unsigned char)(0xE0 | (c >> 12));
        *out++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        *out++ = (unsigned char)(0x80 | (c & 0x3F));
    } else {
        *out++ = (unsigned char)(0xF0 | (c >> 18));
        *out++ = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
        *out++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        *out++ = (unsigned char)(0x80 | (c & 0x3F));
    }
    return out;
}

static unsigned char *
put_text(unsigned char *out, const Text *text)
{
    Py_ssize_t n = text->length;
    switch (text->kind) {
    case 0:
        memcpy(out, text->data, (size_t)n);
        return out + n;
    case PyUnicode_1BYTE_KIND: {
        const Py_UCS1 *chars = text->data;
        for (Py_ssize_t k = 0; k < n; k++) {
            out = put_code_point(out, chars[k]);
        }
        return out;
    }
    case PyUnicode_2BYTE_KIND: {
        const Py_UCS2 *chars = text->data;
        for (Py_ssize_t k = 0; k < n; k++) {
            out = put_code_point(out, chars[k]);
        }
        return out;
    }
    default: {
        const Py_UCS4 *chars = text->data;
        for (Py_ssize_t k = 0; k < n; k++) {
            out = put_code_point(out, chars[k]);
        }
        return out;
    }
    }
}

static PyObject *
utf8_texts(PyObject *module, PyObject *arg)
{
    if (!PyList_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "utf8_texts takes a list of str and bytes");
        return NULL;
    }
    /* a copy of the list holds every text while the GIL is released */
    PyObject *texts = PyList_GetSlice(arg, 0, PyList_GET_SIZE(arg));
    if (texts == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(texts);
    Text *items = PyMem_RawMalloc(sizeof(Text) * (size_t)(count ? count : 1));
    PyObject *data = NULL, *offsets = NULL, *result = NULL;
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t bound = 0; /* at most 4 bytes a character of a wide str */
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PyList_GET_ITEM(texts, k);
        Text *text = &items[k];
        if (PyUnicode_Check(item)) {
            text->length = PyUnicode_GET_LENGTH(item);
            text->data = PyUnicode_DATA(item);
            text->kind = PyUnicode_IS_ASCII(item) ? 0 : PyUnicode_KIND(item);
        } else if (PyBytes_Check(item)) {
            text->length = PyBytes_GET_SIZE(item);
            text->data = PyBytes_AS_STRING(item);
            text->kind = 0;
        } else {
            PyErr_Format(PyExc_TypeError, "utf8_texts: item %zd is %.80s, not str or bytes", k,
                         Py_TYPE(item)->tp_name);
            goto done;
        }
        Py_ssize_t most = text->kind == 0 ? text->length
                        : text->kind == PyUnicode_1BYTE_KIND ? 2 * text->length
                        : text->kind == PyUnicode_2BYTE_KIND ? 3 * text->length
                        : 4 * text->length;
        if (most > INT32_MAX - bound) {
            PyErr_SetString(PyExc_OverflowError, "utf8_texts: the texts pass 2 GiB of UTF-8");
            goto done;
        }
        bound += most;
    }
    data = PyBytes_FromStringAndSize(NULL, bound);
    offsets = PyBytes_FromStringAndSize(NULL, (count + 1) * (Py_ssize_t)sizeof(int32_t));
    if (data == NULL || offsets == NULL) {
        goto done;
    }
    unsigned char *start = (unsigned char *)PyBytes_AS_STRING(data), *out = start;
    int32_t *ends = (int32_t *)PyBytes_AS_STRING(offsets);
    Py_BEGIN_ALLOW_THREADS
    ends[0] = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        out = put_text(out, &items[k]);
        ends[k + 1] = (int32_t)(out - start);
    }
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&data, out - start) < 0) {
        goto done;
    }
    result = PyTuple_Pack(2, data, offsets);
done:
    PyMem_RawFree(items);
    Py_XDECREF(data);
    Py_XDECREF(offsets);
    Py_DECREF(texts);
    return result;
}

static PyObject *
register_types(PyObject *module, PyObject *args)
{
    PyObject *type, *reasons, *hidden, *not_for_the_person;
    if (!PyArg_ParseTuple(args, "O!O!UU", &PyType_Type, &type, &PyDict_Type, &reasons, &hidden,
                          &not_for_the_person)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "the message type must be a tuple subclass");
        return NULL;
    }
    Py_XSETREF(message_type, Py_NewRef(type));
    Py_XSETREF(never_visible, Py_NewRef(reasons));
    Py_XSETREF(reason_hidden, Py_NewRef(hidden));
    Py_XSETREF(reason_not_for_the_person, Py_NewRef(not_for_the_person));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"common_case", (PyCFunction)common_case, METH_O,
     PyDoc_STR("common_case(message) -> Message, skip reason or None: see chatgpt.classify.")},
    {"branch_messages", (PyCFunction)branch_messages, METH_VARARGS,
     PyDoc_STR("branch_messages(mapping, current_node, classify, skipped) -> list or None: "
               "see chatgpt.linearize.")},
    {"register_types", (PyCFunction)register_types, METH_VARARGS,
     PyDoc_STR("register_types(Message, {content type: skip reason}, hidden reason, "
               "not-for-the-person reason): what common_case returns.")},
    {"utf8_texts", (PyCFunction)utf8_texts, METH_O,
     PyDoc_STR("utf8_texts(texts: list[str | bytes]) -> (data, offsets): the texts as one UTF-8 "
               "buffer and their int32 offsets, encoded without the GIL.")},
    {NULL, NULL, 0, NULL},
};

static int
intern_names(void)
{
    struct { PyObject **slot; const char *name; } names[] = {
        {&str_id, "id"}, {&str_role, "role"}, {&str_content, "content"},
        {&str_author, "author"}, {&str_metadata, "metadata"}, {&str_recipient, "recipient"},
        {&str_create_time, "create_time"}, {&str_content_type, "content_type"},
        {&str_parts, "parts"}, {&str_hidden, "is_visually_hidden_from_conversation"},
        {&str_model_slug, "model_slug"}, {&str_message, "message"}, {&str_parent, "parent"},
        {&str_unknown_prefix, "unknown:"},
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        *names[k].slot = PyUnicode_InternFromString(names[k].name);
        if (*names[k].slot == NULL) {
            return -1;
        }
    }
    one = PyLong_FromLong(1);
    return one == NULL ? -1 : 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "soulprint_pipeline.export._native",
    .m_methods = module_methods,
    .m_doc = PyDoc_STR(
        "The reader's hot loops: StructureGuard, which tracks the nesting depth, path length and "
        "container count ijson would build from a JSON byte stream, and common_case, the common "
        "cases of classifying a ChatGPT message."),
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (PyType_Ready(&GuardType) < 0 || intern_names() < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&GuardType);
    if (PyModule_AddObject(m, "StructureGuard", (PyObject *)&GuardType) < 0) {
        Py_DECREF(&GuardType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
