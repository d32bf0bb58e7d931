/* sfu._native: the SFU's per-packet send path in C (SRTP protect + sendto), see sfu/native.py.
 *
 * One Sender per (DTLS transport, nominated UDP pair). Sender.send(data) protects one RTP packet with the
 * transport's libsrtp session (through the function pointer pylibsrtp's own binding holds, so the library
 * and the session are the ones aiortc set up) and sends it on the pair's socket to the pair's remote
 * address. It does what aiortc's path does through pylibsrtp's Python wrapper and asyncio's datagram
 * transport, without a Python frame:
 *
 *   - while the socket's transport (asyncio's or uvloop's) is closing, nothing is sent (returns False);
 *   - while that transport's write buffer holds datagrams, or when the socket would block, the
 *     protected datagram is returned, for the caller to hand to the transport's sendto (which queues it
 *     behind the others, in order);
 *   - any other socket error is counted and the datagram is lost (asyncio reports it to the protocol's
 *     error_received, which aioice ignores: UDP);
 *   - an SRTP failure raises SrtpError (the session is left as libsrtp leaves it).
 *
 * The GIL is held throughout: the call never blocks (the socket is non-blocking).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* libsrtp 2: srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr) */
typedef int (*srtp_fn)(void *ctx, void *buffer, int *length);

/* pylibsrtp's own bound: a 1500-byte buffer, minus SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN */
#define BUFFER_BYTES 1500
#define TRAILER_BYTES (16 + 128)

static PyObject *SrtpError;

typedef struct {
    PyObject_HEAD
    srtp_fn protect;
    void *context;
    int fd;
    struct sockaddr_storage address;
    socklen_t address_length;
    PyObject *session;   /* the pylibsrtp.Session owning the context: kept alive */
    PyObject *socket;    /* the socket owning fd: kept alive */
    PyObject *transport; /* the asyncio datagram transport (asyncio's or uvloop's): is_closing() and
                            get_write_buffer_size() are asked before each send */
    PyObject *remote;    /* the remote address as asyncio takes it (for a datagram queued through sendto) */
    /* what forward() checks before each send (NULL: forward() leaves the packet to the Python path) */
    PyObject *dtls;      /* the DTLS transport: its _tx_srtp must still be `session` */
    PyObject *nominated; /* the ICE connection's nominated pairs: pair 1 must still be `pair` */
    PyObject *pair;
    int connected;       /* kept by the DTLS transport's statechange (sfu.hooks) */
    unsigned long long sent;
    unsigned long long octets;
    unsigned long long handed_back;
    unsigned long long errors;
    unsigned long long forwarded;
    int last_errno;
    PyObject *weakrefs;
    unsigned char scratch[BUFFER_BYTES];
} Sender;

static PyObject *name_is_closing, *name_get_write_buffer_size;

static int
Sender_traverse(Sender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->session);
    Py_VISIT(self->socket);
    Py_VISIT(self->transport);
    Py_VISIT(self->remote);
    Py_VISIT(self->dtls);
    Py_VISIT(self->nominated);
    Py_VISIT(self->pair);
    return 0;
}

static int
Sender_clear(Sender *self)
{
    Py_CLEAR(self->session);
    Py_CLEAR(self->socket);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->remote);
    Py_CLEAR(self->dtls);
    Py_CLEAR(self->nominated);
    Py_CLEAR(self->pair);
    return 0;
}

static void
Sender_dealloc(Sender *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Sender_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
parse_address(Sender *self, int family, const char *host, int port)
{
    memset(&self->address, 0, sizeof(self->address));
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d is not 0..65535", port);
        return -1;
    }
    if (family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&self->address;
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &in4->sin_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "%s is not an IPv4 address", host);
            return -1;
        }
        self->address_length = sizeof(*in4);
        return 0;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&self->address;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "%s is not an IPv6 address (scoped addresses are not handled here)",
                         host);
            return -1;
        }
        self->address_length = sizeof(*in6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "socket family %d is neither AF_INET nor AF_INET6", family);
    return -1;
}

static int
Sender_init(Sender *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"protect", "context", "session", "socket", "family", "host", "port", "transport",
                               "address", "dtls", "nominated", "pair", "connected", NULL};
    unsigned long long protect = 0, context = 0;
    PyObject *session, *socket_object, *transport, *address = Py_None, *dtls = Py_None;
    PyObject *nominated = Py_None, *pair = Py_None;
    int family, port, connected = 0;
    const char *host;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKOOisiO|OOOOp:Sender", keywords, &protect, &context, &session,
                                     &socket_object, &family, &host, &port, &transport, &address, &dtls,
                                     &nominated, &pair, &connected))
        return -1;
    if (nominated != Py_None && !PyDict_Check(nominated)) {
        PyErr_SetString(PyExc_TypeError, "nominated must be a dict");
        return -1;
    }
    if (protect == 0 || context == 0) {
        PyErr_SetString(PyExc_ValueError, "the SRTP function and session must not be NULL");
        return -1;
    }
    PyObject *fileno = PyObject_CallMethod(socket_object, "fileno", NULL);
    if (fileno == NULL)
        return -1;
    long fd = PyLong_AsLong(fileno);
    Py_DECREF(fileno);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "the socket is closed");
        return -1;
    }
    if (parse_address(self, family, host, port) < 0)
        return -1;
    self->protect = (srtp_fn)(uintptr_t)protect;
    self->context = (void *)(uintptr_t)context;
    self->fd = (int)fd;
    Py_INCREF(session);
    Py_XSETREF(self->session, session);
    Py_INCREF(socket_object);
    Py_XSETREF(self->socket, socket_object);
    Py_INCREF(transport);
    Py_XSETREF(self->transport, transport);
    Py_INCREF(address);
    Py_XSETREF(self->remote, address);
    Py_XSETREF(self->dtls, dtls == Py_None ? NULL : Py_NewRef(dtls));
    Py_XSETREF(self->nominated, nominated == Py_None ? NULL : Py_NewRef(nominated));
    Py_XSETREF(self->pair, pair == Py_None ? NULL : Py_NewRef(pair));
    self->connected = connected;
    return 0;
}

/* SEND_CLOSING: the transport closes, nothing sent; SEND_DONE: sent (or lost to a socket error, counted);
 * SEND_BACK: protected, but to be queued through the transport (self->scratch holds it, *length its size);
 * SEND_ERROR: an exception is set */
#define SEND_ERROR (-1)
#define SEND_CLOSING 0
#define SEND_DONE 1
#define SEND_BACK 2

static int
protect_send(Sender *self, const void *data, Py_ssize_t size, int *length)
{
    if (size > BUFFER_BYTES - TRAILER_BYTES) {
        PyErr_Format(PyExc_ValueError, "an RTP packet of %zd bytes is longer than %d", size,
                     BUFFER_BYTES - TRAILER_BYTES);
        return SEND_ERROR;
    }
    PyObject *closing = PyObject_CallMethodNoArgs(self->transport, name_is_closing);
    if (closing == NULL)
        return SEND_ERROR;
    int is_closing = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    if (is_closing != 0)
        return is_closing < 0 ? SEND_ERROR : SEND_CLOSING;
    *length = (int)size;
    memcpy(self->scratch, data, (size_t)size);
    int status = self->protect(self->context, self->scratch, length);
    if (status != 0) {
        PyObject *error = Py_BuildValue("(is)", status, "SRTP protect failed");
        if (error != NULL) {
            PyErr_SetObject(SrtpError, error);
            Py_DECREF(error);
        }
        return SEND_ERROR;
    }
    PyObject *buffered = PyObject_CallMethodNoArgs(self->transport, name_get_write_buffer_size);
    if (buffered == NULL)
        return SEND_ERROR;
    Py_ssize_t queued = PyLong_AsSsize_t(buffered);
    Py_DECREF(buffered);
    if (queued == -1 && PyErr_Occurred())
        return SEND_ERROR;
    if (queued == 0) {
        ssize_t done = sendto(self->fd, self->scratch, (size_t)*length, 0, (struct sockaddr *)&self->address,
                              self->address_length);
        if (done >= 0) {
            self->sent += 1;
            self->octets += (unsigned long long)*length;
            return SEND_DONE;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            self->errors += 1;
            self->last_errno = errno;
            return SEND_DONE;
        }
    }
    self->handed_back += 1;
    return SEND_BACK;
}

static PyObject *
Sender_send(Sender *self, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int length = 0;
    int result = protect_send(self, view.buf, view.len, &length);
    PyBuffer_Release(&view);
    switch (result) {
    case SEND_CLOSING:
        Py_RETURN_FALSE;
    case SEND_DONE:
        Py_RETURN_NONE;
    case SEND_BACK:
        return PyBytes_FromStringAndSize((const char *)self->scratch, length);
    default:
        return NULL;
    }
}

static PyObject *
Sender_set_connected(Sender *self, PyObject *value)
{
    int connected = PyObject_IsTrue(value);
    if (connected < 0)
        return NULL;
    self->connected = connected;
    Py_RETURN_NONE;
}

static PyMethodDef Sender_methods[] = {
    {"set_connected", (PyCFunction)Sender_set_connected, METH_O,
     "set_connected(flag): whether the DTLS transport is connected (forward() sends only then)"},
    {"send", (PyCFunction)Sender_send, METH_O,
     "send(data) -> None | False | bytes: protect one RTP packet and send it (None), nothing while the "
     "transport closes (False), or the protected datagram to queue through the transport (bytes)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Sender_members[] = {
    {"sent", T_ULONGLONG, offsetof(Sender, sent), READONLY, "datagrams sent"},
    {"octets", T_ULONGLONG, offsetof(Sender, octets), READONLY, "bytes sent (after SRTP)"},
    {"handed_back", T_ULONGLONG, offsetof(Sender, handed_back), READONLY,
     "datagrams returned to be queued through the transport"},
    {"errors", T_ULONGLONG, offsetof(Sender, errors), READONLY, "datagrams lost to a socket error"},
    {"forwarded", T_ULONGLONG, offsetof(Sender, forwarded), READONLY, "packets sent by forward()"},
    {"last_errno", T_INT, offsetof(Sender, last_errno), READONLY, "errno of the last socket error (0: none)"},
    {"fd", T_INT, offsetof(Sender, fd), READONLY, "the socket's descriptor"},
    {"connected", T_INT, offsetof(Sender, connected), READONLY, "whether the DTLS transport is connected"},
    {"pair", T_OBJECT, offsetof(Sender, pair), READONLY, "the nominated pair it was made for"},
    {"session", T_OBJECT, offsetof(Sender, session), READONLY, "the SRTP session it protects with"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._native.Sender",
    .tp_doc = "Sender(*, protect, context, session, socket, family, host, port, transport, buffer): SRTP "
              "protect + sendto of RTP packets on one UDP pair (see sfu/native.py).",
    .tp_basicsize = sizeof(Sender),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_traverse = (traverseproc)Sender_traverse,
    .tp_clear = (inquiry)Sender_clear,
    .tp_methods = Sender_methods,
    .tp_members = Sender_members,
    .tp_weaklistoffset = offsetof(Sender, weakrefs),
};


/* ---------------------------------------------------------------------------------------------------------
 * Rewriter: sfu.rtp_forward.SlotRewriter in C, the same state machine and the same bytes (the Python class is
 * the reference; tests/sfu/test_native_rewriter.py runs its tests and random streams through both). The
 * constructor takes the values SlotRewriter resolved (SlotRewriter.resolved()): validation and defaults
 * stay in one place.
 */

#define MAX_DROPOUT 3000
#define MAX_MISORDER 1000
#define NTP_UNIX 2208988800.0
#define KEYFRAME_NONE 0
#define KEYFRAME_VP8 1
#define KEYFRAME_H264 2
#define HEADER_MAX (12 + 4 + 4 + 2 + 17 + 3)

typedef struct {
    PyObject_HEAD
    unsigned int ssrc;
    int payload_type;
    int clock_rate;
    PyObject *codec;
    long long frame_interval;
    unsigned long long packets_sent;
    unsigned long long octets_sent;
    double last_timestamp_at;
    unsigned long long dropped_other_source;
    unsigned long long dropped_waiting;
    unsigned long long dropped_stale;
    unsigned long long dropped_jump;
    unsigned long long anchors;
    int keyframe;
    int vp8;
    int gap_free;
    int abs_id;   /* -1: none */
    int level_id; /* -1: none */
    unsigned char mid_element[17];
    int mid_element_length; /* 0: none */
    PyObject *source;       /* NULL: none */
    int anchored;
    long long in_ssrc;
    long long probe;
    long long high_seq16, high_seq, high_ts32, high_ts, anchor_seq, anchor_ts, seq_offset, ts_offset;
    long long ts_origin, out_seq, out_ts;
    int has_out_ts;
    long long pid_offset, tl0_offset;
    int mapped;
    PyObject *newest_payload; /* bytes */
    PyObject *weakrefs;
} Rewriter;

static PyObject *name_sequence_number, *name_timestamp, *name_ssrc, *name_marker, *name_payload, *name_extensions,
    *name_audio_level;

static int
Rewriter_traverse(Rewriter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->codec);
    Py_VISIT(self->source);
    Py_VISIT(self->newest_payload);
    return 0;
}

static int
Rewriter_clear(Rewriter *self)
{
    Py_CLEAR(self->codec);
    Py_CLEAR(self->source);
    Py_CLEAR(self->newest_payload);
    return 0;
}

static void
Rewriter_dealloc(Rewriter *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Rewriter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Rewriter_init(Rewriter *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"ssrc", "payload_type", "clock_rate", "codec", "frame_interval", "gap_free",
                               "keyframe", "first_sequence_number", "timestamp_origin", "abs_send_time_id",
                               "audio_level_id", "mid_element", NULL};
    unsigned int ssrc;
    int payload_type, clock_rate, gap_free, keyframe, abs_id, level_id;
    long long frame_interval, first_seq, ts_origin;
    PyObject *codec;
    Py_buffer mid;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "IiiULpiLLiiy*:Rewriter", keywords, &ssrc, &payload_type,
                                     &clock_rate, &codec, &frame_interval, &gap_free, &keyframe, &first_seq,
                                     &ts_origin, &abs_id, &level_id, &mid))
        return -1;
    int bad = mid.len > 17 || payload_type < 0 || payload_type > 127 || clock_rate <= 0 || keyframe < 0 ||
              keyframe > 2 || abs_id < -1 || abs_id > 14 || level_id < -1 || level_id > 14 || abs_id == 0 ||
              level_id == 0;
    if (!bad) {
        memcpy(self->mid_element, mid.buf, (size_t)mid.len);
        self->mid_element_length = (int)mid.len;
    }
    PyBuffer_Release(&mid);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "Rewriter: a value out of range (build it with sfu.native.make_rewriter)");
        return -1;
    }
    self->ssrc = ssrc;
    self->payload_type = payload_type;
    self->clock_rate = clock_rate;
    Py_INCREF(codec);
    Py_XSETREF(self->codec, codec);
    self->frame_interval = frame_interval;
    self->gap_free = gap_free;
    self->keyframe = keyframe;
    self->vp8 = keyframe == KEYFRAME_VP8;
    self->abs_id = abs_id;
    self->level_id = level_id;
    self->packets_sent = self->octets_sent = 0;
    self->last_timestamp_at = 0.0;
    self->dropped_other_source = self->dropped_waiting = self->dropped_stale = self->dropped_jump = 0;
    self->anchors = 0;
    Py_CLEAR(self->source);
    self->anchored = 0;
    self->in_ssrc = -1;
    self->probe = -1;
    self->high_seq16 = self->high_seq = self->high_ts32 = self->high_ts = 0;
    self->anchor_seq = self->anchor_ts = self->seq_offset = self->ts_offset = 0;
    self->out_seq = (first_seq & 0xFFFF) - 1;
    self->ts_origin = ts_origin & 0xFFFFFFFFLL;
    self->out_ts = 0;
    self->has_out_ts = 0;
    self->pid_offset = self->tl0_offset = 0;
    self->mapped = 0;
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL)
        return -1;
    Py_XSETREF(self->newest_payload, empty);
    return 0;
}

/* (descriptor length, picture id offset or -1, picture id bits, TL0PICIDX offset or -1); -1 if malformed */
static int
vp8_fields(const unsigned char *p, Py_ssize_t size, int *pid_at, int *pid_bits, int *tl0_at)
{
    *pid_at = -1;
    *pid_bits = 0;
    *tl0_at = -1;
    if (size < 1)
        return -1;
    if (!(p[0] & 0x80))
        return 1;
    if (size < 2)
        return -1;
    unsigned char ext = p[1];
    int pos = 2;
    if (ext & 0x80) {
        if (size < pos + 1)
            return -1;
        *pid_at = pos;
        if (p[pos] & 0x80) {
            if (size < pos + 2)
                return -1;
            *pid_bits = 15;
            pos += 2;
        }
        else {
            *pid_bits = 7;
            pos += 1;
        }
    }
    if (ext & 0x40) {
        if (size < pos + 1)
            return -1;
        *tl0_at = pos;
        pos += 1;
    }
    if (ext & 0x30) {
        if (size < pos + 1)
            return -1;
        pos += 1;
    }
    return pos;
}

static int
vp8_keyframe_start(const unsigned char *p, Py_ssize_t size)
{
    int pid_at, pid_bits, tl0_at;
    if (size < 1 || (p[0] & 0x17) != 0x10)
        return 0;
    int start = vp8_fields(p, size, &pid_at, &pid_bits, &tl0_at);
    if (start < 0)
        return 0;
    return size >= start + 6 && (p[start] & 0x01) == 0 && p[start + 3] == 0x9D && p[start + 4] == 0x01 &&
           p[start + 5] == 0x2A;
}

static int
h264_keyframe_start(const unsigned char *p, Py_ssize_t size)
{
    if (size < 1)
        return 0;
    int nal = p[0] & 0x1F;
    if (nal == 24) {
        Py_ssize_t pos = 1;
        while (pos + 2 < size) {
            Py_ssize_t length = ((Py_ssize_t)p[pos] << 8) | p[pos + 1];
            int inner = p[pos + 2] & 0x1F;
            if (inner == 7 || (inner == 5 && length > 1 && pos + 3 < size && (p[pos + 3] & 0x80)))
                return 1;
            pos += 2 + length;
        }
        return 0;
    }
    if (nal == 28) {
        if (size < 2 || !(p[1] & 0x80))
            return 0;
        int inner = p[1] & 0x1F;
        return inner == 7 || (inner == 5 && size > 2 && (p[2] & 0x80) != 0);
    }
    return nal == 7 || (nal == 5 && size > 1 && (p[1] & 0x80) != 0);
}

/* the picture id (15 bits, or -1) and TL0PICIDX (or -1) of a VP8 payload; both -1 if malformed */
static void
vp8_ids(const unsigned char *p, Py_ssize_t size, long long *pid, long long *tl0)
{
    int pid_at, pid_bits, tl0_at;
    *pid = -1;
    *tl0 = -1;
    if (size < 1 || !(p[0] & 0x80))
        return;
    if (vp8_fields(p, size, &pid_at, &pid_bits, &tl0_at) < 0)
        return;
    if (pid_bits == 15)
        *pid = ((long long)(p[pid_at] & 0x7F) << 8) | p[pid_at + 1];
    else if (pid_bits == 7)
        *pid = p[pid_at];
    if (tl0_at >= 0)
        *tl0 = p[tl0_at];
}

static long long
py_mod(long long value, long long modulus)
{
    long long r = value % modulus;
    return r < 0 ? r + modulus : r;
}

static void
anchor_vp8(Rewriter *self, const unsigned char *p, Py_ssize_t size)
{
    long long new_pid, new_tl0, old_pid, old_tl0;
    vp8_ids(p, size, &new_pid, &new_tl0);
    vp8_ids((const unsigned char *)PyBytes_AS_STRING(self->newest_payload), PyBytes_GET_SIZE(self->newest_payload),
            &old_pid, &old_tl0);
    if (new_pid >= 0 && old_pid >= 0)
        self->pid_offset = ((old_pid + self->pid_offset) & 0x7FFF) + 1 - new_pid;
    if (new_tl0 >= 0 && old_tl0 >= 0)
        self->tl0_offset = ((old_tl0 + self->tl0_offset) & 0xFF) + 1 - new_tl0;
    self->pid_offset = py_mod(self->pid_offset, 0x8000);
    self->tl0_offset = py_mod(self->tl0_offset, 0x100);
    self->mapped = self->pid_offset != 0 || self->tl0_offset != 0;
}

/* 1: anchored; 0: dropped (waiting for a keyframe) */
static int
anchor(Rewriter *self, long long seq, long long ts, long long ssrc, const unsigned char *p, Py_ssize_t size,
       double now)
{
    if ((self->keyframe == KEYFRAME_VP8 && !vp8_keyframe_start(p, size)) ||
        (self->keyframe == KEYFRAME_H264 && !h264_keyframe_start(p, size))) {
        self->dropped_waiting += 1;
        self->anchored = 0;
        return 0;
    }
    self->anchored = 1;
    self->in_ssrc = ssrc;
    self->probe = -1;
    self->high_seq16 = seq;
    self->high_ts32 = ts;
    self->high_seq = self->anchor_seq = seq;
    self->high_ts = self->anchor_ts = ts;
    self->seq_offset = self->out_seq + 1 - seq;
    if (!self->has_out_ts) {
        self->ts_offset = self->ts_origin - ts;
    }
    else {
        long long gap = (long long)nearbyint((now - self->last_timestamp_at) * (double)self->clock_rate);
        self->ts_offset = self->out_ts + (gap > self->frame_interval ? gap : self->frame_interval) - ts;
    }
    if (self->vp8)
        anchor_vp8(self, p, size);
    self->anchors += 1;
    return 1;
}

static int
get_long(PyObject *object, PyObject *name, long long *value)
{
    PyObject *attribute = PyObject_GetAttr(object, name);
    if (attribute == NULL)
        return -1;
    *value = PyLong_AsLongLong(attribute);
    Py_DECREF(attribute);
    if (*value == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* the audio level byte (V bit | level) of the packet, -1 if it has none, -2 on error */
static int
audio_level_byte(PyObject *packet)
{
    PyObject *extensions = PyObject_GetAttr(packet, name_extensions);
    if (extensions == NULL)
        return -2;
    PyObject *level = PyObject_GetAttr(extensions, name_audio_level);
    Py_DECREF(extensions);
    if (level == NULL)
        return -2;
    if (level == Py_None) {
        Py_DECREF(level);
        return -1;
    }
    if (!PyTuple_Check(level) || PyTuple_GET_SIZE(level) != 2) {
        Py_DECREF(level);
        PyErr_SetString(PyExc_TypeError, "audio_level must be (voice, level) or None");
        return -2;
    }
    int voice = PyObject_IsTrue(PyTuple_GET_ITEM(level, 0));
    long value = PyLong_AsLong(PyTuple_GET_ITEM(level, 1));
    Py_DECREF(level);
    if (voice < 0 || (value == -1 && PyErr_Occurred()))
        return -2;
    return (voice ? 0x80 : 0) | (int)(value & 0x7F);
}

/* the outgoing packet (a new reference), Py_None (a new reference) when it is dropped, NULL on error */
static PyObject *
rewrite_impl(Rewriter *self, PyObject *packet, PyObject *source, double now, Py_ssize_t *payload_size)
{
    PyObject *current = self->source;
    if (current == NULL)
        goto other_source;
    if (source != current) {
        int equal = PyObject_RichCompareBool(source, current, Py_EQ);
        if (equal < 0)
            return NULL;
        if (!equal)
            goto other_source;
    }
    long long seq, ts, ssrc, marker;
    if (get_long(packet, name_sequence_number, &seq) < 0 || get_long(packet, name_timestamp, &ts) < 0 ||
        get_long(packet, name_ssrc, &ssrc) < 0 || get_long(packet, name_marker, &marker) < 0)
        return NULL;
    PyObject *payload = PyObject_GetAttr(packet, name_payload);
    if (payload == NULL)
        return NULL;
    if (!PyBytes_Check(payload)) {
        Py_DECREF(payload);
        PyErr_SetString(PyExc_TypeError, "packet.payload must be bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    long long ext_seq, ext_ts;
    if (!self->anchored || ssrc != self->in_ssrc) {
        if (!anchor(self, seq, ts, ssrc, p, size, now))
            goto dropped;
        ext_seq = self->high_seq;
        ext_ts = self->high_ts;
    }
    else {
        long long delta = (seq - self->high_seq16) & 0xFFFF;
        if (delta >= 0x8000)
            delta -= 0x10000;
        if (delta > MAX_DROPOUT || delta < -MAX_MISORDER) {
            if (seq != self->probe) {
                self->probe = (seq + 1) & 0xFFFF;
                self->dropped_jump += 1;
                goto dropped;
            }
            self->anchored = 0;
            if (!anchor(self, seq, ts, ssrc, p, size, now))
                goto dropped;
            ext_seq = self->high_seq;
            ext_ts = self->high_ts;
        }
        else {
            ext_seq = self->high_seq + delta;
            if (ext_seq < self->anchor_seq) {
                self->dropped_stale += 1;
                goto dropped;
            }
            long long dts = (ts - self->high_ts32) & 0xFFFFFFFFLL;
            if (dts >= 0x80000000LL)
                dts -= 0x100000000LL;
            ext_ts = self->high_ts + dts;
            if (ext_ts < self->anchor_ts) {
                self->dropped_stale += 1;
                goto dropped;
            }
            if (delta > 0) {
                self->high_seq16 = seq;
                self->high_seq = ext_seq;
            }
            else if (self->gap_free) {
                self->dropped_stale += 1;
                goto dropped;
            }
            if (dts > 0) {
                self->high_ts32 = ts;
                self->high_ts = ext_ts;
            }
        }
    }
    long long out_seq = self->gap_free ? self->out_seq + 1 : ext_seq + self->seq_offset;
    long long ext_out_ts = ext_ts + self->ts_offset;
    int level = -1;
    if (self->level_id >= 0) {
        level = audio_level_byte(packet);
        if (level == -2) {
            Py_DECREF(payload);
            return NULL;
        }
    }
    /* the header: fixed part, then one-byte extensions: abs-send-time, audio level, mid, padding */
    unsigned char header[HEADER_MAX];
    int elements = (self->abs_id >= 0 ? 4 : 0) + (level >= 0 ? 2 : 0) + self->mid_element_length;
    int words = (elements + 3) / 4;
    int length = 12;
    header[0] = elements ? 0x90 : 0x80;
    header[1] = (unsigned char)((marker ? 0x80 : 0) | self->payload_type);
    header[2] = (unsigned char)((out_seq >> 8) & 0xFF);
    header[3] = (unsigned char)(out_seq & 0xFF);
    unsigned int out_ts32 = (unsigned int)(ext_out_ts & 0xFFFFFFFFLL);
    header[4] = (unsigned char)(out_ts32 >> 24);
    header[5] = (unsigned char)(out_ts32 >> 16);
    header[6] = (unsigned char)(out_ts32 >> 8);
    header[7] = (unsigned char)out_ts32;
    header[8] = (unsigned char)(self->ssrc >> 24);
    header[9] = (unsigned char)(self->ssrc >> 16);
    header[10] = (unsigned char)(self->ssrc >> 8);
    header[11] = (unsigned char)self->ssrc;
    if (elements) {
        header[12] = 0xBE;
        header[13] = 0xDE;
        header[14] = (unsigned char)(words >> 8);
        header[15] = (unsigned char)words;
        length = 16;
        if (self->abs_id >= 0) {
            long long value = (long long)((now + NTP_UNIX) * 262144.0) & 0xFFFFFF;
            header[length++] = (unsigned char)((self->abs_id << 4) | 2);
            header[length++] = (unsigned char)(value >> 16);
            header[length++] = (unsigned char)(value >> 8);
            header[length++] = (unsigned char)value;
        }
        if (level >= 0) {
            header[length++] = (unsigned char)(self->level_id << 4);
            header[length++] = (unsigned char)level;
        }
        memcpy(header + length, self->mid_element, (size_t)self->mid_element_length);
        length += self->mid_element_length;
        while (length < 16 + 4 * words)
            header[length++] = 0;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, length + size);
    if (out == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    memcpy(o, header, (size_t)length);
    memcpy(o + length, p, (size_t)size);
    if (self->mapped && size > 0 && (p[0] & 0x80)) {
        int pid_at, pid_bits, tl0_at;
        if (vp8_fields(p, size, &pid_at, &pid_bits, &tl0_at) >= 0) { /* malformed: forwarded as it is */
            unsigned char *d = o + length;
            if (pid_at >= 0) {
                if (pid_bits == 15) {
                    long long pid = ((((long long)(p[pid_at] & 0x7F) << 8) | p[pid_at + 1]) + self->pid_offset) & 0x7FFF;
                    d[pid_at] = (unsigned char)(0x80 | (pid >> 8));
                    d[pid_at + 1] = (unsigned char)(pid & 0xFF);
                }
                else {
                    d[pid_at] = (unsigned char)((p[pid_at] + self->pid_offset) & 0x7F);
                }
            }
            if (tl0_at >= 0)
                d[tl0_at] = (unsigned char)((p[tl0_at] + self->tl0_offset) & 0xFF);
        }
    }
    if (out_seq > self->out_seq) {
        self->out_seq = out_seq;
        Py_SETREF(self->newest_payload, payload); /* the reference taken above moves here */
    }
    else {
        Py_DECREF(payload);
    }
    if (!self->has_out_ts || ext_out_ts > self->out_ts) {
        self->out_ts = ext_out_ts;
        self->has_out_ts = 1;
        self->last_timestamp_at = now;
    }
    self->packets_sent += 1;
    self->octets_sent += (unsigned long long)size;
    *payload_size = size;
    return out;

dropped:
    Py_DECREF(payload);
    Py_RETURN_NONE;
other_source:
    self->dropped_other_source += 1;
    Py_RETURN_NONE;
}

static PyObject *
Rewriter_rewrite(Rewriter *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "rewrite(packet, source, now)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[2]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    Py_ssize_t size;
    return rewrite_impl(self, args[0], args[1], now, &size);
}

static PyObject *
Rewriter_set_source(Rewriter *self, PyObject *source)
{
    PyObject *current = self->source;
    if (source == Py_None)
        source = NULL;
    if (source == current)
        Py_RETURN_NONE;
    if (source != NULL && current != NULL) {
        int equal = PyObject_RichCompareBool(source, current, Py_EQ);
        if (equal < 0)
            return NULL;
        if (equal)
            Py_RETURN_NONE;
    }
    Py_XINCREF(source);
    Py_XSETREF(self->source, source);
    self->anchored = 0;
    Py_RETURN_NONE;
}

static PyObject *
Rewriter_request_keyframe(Rewriter *self, PyObject *Py_UNUSED(ignored))
{
    if (self->keyframe != KEYFRAME_NONE)
        self->anchored = 0;
    Py_RETURN_NONE;
}

static PyObject *
Rewriter_sender_report(Rewriter *self, PyObject *arg)
{
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    if (!self->has_out_ts)
        Py_RETURN_NONE;
    long long elapsed = (long long)nearbyint((now - self->last_timestamp_at) * (double)self->clock_rate);
    PyObject *ntp = PyLong_FromDouble((now + NTP_UNIX) * 4294967296.0);
    if (ntp == NULL)
        return NULL;
    PyObject *mask = PyLong_FromUnsignedLongLong(0xFFFFFFFFFFFFFFFFULL);
    if (mask == NULL) {
        Py_DECREF(ntp);
        return NULL;
    }
    PyObject *masked = PyNumber_And(ntp, mask);
    Py_DECREF(ntp);
    Py_DECREF(mask);
    if (masked == NULL)
        return NULL;
    return Py_BuildValue("(NK)", masked, (unsigned long long)((self->out_ts + elapsed) & 0xFFFFFFFFLL));
}

static PyObject *
Rewriter_get_source(Rewriter *self, void *Py_UNUSED(closure))
{
    PyObject *source = self->source ? self->source : Py_None;
    Py_INCREF(source);
    return source;
}

static PyObject *
Rewriter_get_last_timestamp(Rewriter *self, void *Py_UNUSED(closure))
{
    if (!self->has_out_ts)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(self->out_ts & 0xFFFFFFFFLL);
}

static PyObject *
Rewriter_get_waiting_keyframe(Rewriter *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->source != NULL && !self->anchored && self->keyframe != KEYFRAME_NONE);
}

static PyObject *
Rewriter_repr(Rewriter *self)
{
    const char *state = self->anchored ? "forwarding" : (self->source != NULL ? "waiting" : "idle");
    return PyUnicode_FromFormat("<native Rewriter ssrc=%u %U %s>", self->ssrc, self->codec, state);
}

static PyMethodDef Rewriter_methods[] = {
    {"rewrite", (PyCFunction)(void (*)(void))Rewriter_rewrite, METH_FASTCALL,
     "rewrite(packet, source, now) -> bytes | None (SlotRewriter.rewrite)"},
    {"set_source", (PyCFunction)Rewriter_set_source, METH_O, "SlotRewriter.set_source"},
    {"request_keyframe", (PyCFunction)Rewriter_request_keyframe, METH_NOARGS, "SlotRewriter.request_keyframe"},
    {"sender_report", (PyCFunction)Rewriter_sender_report, METH_O, "SlotRewriter.sender_report"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Rewriter_getset[] = {
    {"source", (getter)Rewriter_get_source, NULL, "the current source (None: nothing)", NULL},
    {"last_timestamp", (getter)Rewriter_get_last_timestamp, NULL, "the highest RTP timestamp sent", NULL},
    {"waiting_keyframe", (getter)Rewriter_get_waiting_keyframe, NULL, "video dropped until a keyframe", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Rewriter_members[] = {
    {"ssrc", T_UINT, offsetof(Rewriter, ssrc), READONLY, NULL},
    {"payload_type", T_INT, offsetof(Rewriter, payload_type), READONLY, NULL},
    {"clock_rate", T_INT, offsetof(Rewriter, clock_rate), READONLY, NULL},
    {"codec", T_OBJECT, offsetof(Rewriter, codec), READONLY, NULL},
    {"frame_interval", T_LONGLONG, offsetof(Rewriter, frame_interval), READONLY, NULL},
    {"packets_sent", T_ULONGLONG, offsetof(Rewriter, packets_sent), READONLY, NULL},
    {"octets_sent", T_ULONGLONG, offsetof(Rewriter, octets_sent), READONLY, NULL},
    {"last_timestamp_at", T_DOUBLE, offsetof(Rewriter, last_timestamp_at), READONLY, NULL},
    {"dropped_other_source", T_ULONGLONG, offsetof(Rewriter, dropped_other_source), READONLY, NULL},
    {"dropped_waiting", T_ULONGLONG, offsetof(Rewriter, dropped_waiting), READONLY, NULL},
    {"dropped_stale", T_ULONGLONG, offsetof(Rewriter, dropped_stale), READONLY, NULL},
    {"dropped_jump", T_ULONGLONG, offsetof(Rewriter, dropped_jump), READONLY, NULL},
    {"anchors", T_ULONGLONG, offsetof(Rewriter, anchors), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RewriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._native.Rewriter",
    .tp_doc = "sfu.rtp_forward.SlotRewriter in C (build it with sfu.native.make_rewriter).",
    .tp_basicsize = sizeof(Rewriter),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Rewriter_init,
    .tp_dealloc = (destructor)Rewriter_dealloc,
    .tp_traverse = (traverseproc)Rewriter_traverse,
    .tp_clear = (inquiry)Rewriter_clear,
    .tp_repr = (reprfunc)Rewriter_repr,
    .tp_methods = Rewriter_methods,
    .tp_getset = Rewriter_getset,
    .tp_members = Rewriter_members,
    .tp_weaklistoffset = offsetof(Rewriter, weakrefs),
};

/* ---------------------------------------------------------------------------------------------------------
 * forward(rewriter, sender, packet, source, now, seqs, packets): one forwarded packet for one subscriber slot,
 * all of it in C: Rewriter.rewrite, then (while `sender` is still the transport's: connected, the same
 * nominated pair, the same SRTP session) protect + sendto, and the plain packet into the slot's NACK history
 * (SendHistory's two rings, or None). Returns None (the rewriter dropped it), the payload's size (sent), -1
 * (the socket's transport closes: not sent), or the rewritten packet (bytes) for the Python path to send
 * (the sender is stale). A datagram asyncio must queue goes through the transport's sendto, as in Python.
 */

static PyObject *name_tx_srtp, *name_sendto, *number_one;

static PyObject *
native_forward(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "forward(rewriter, sender, packet, source, now, seqs, packets)");
        return NULL;
    }
    if (!Py_IS_TYPE(args[0], &RewriterType) || !Py_IS_TYPE(args[1], &SenderType)) {
        PyErr_SetString(PyExc_TypeError, "forward() takes a sfu._native Rewriter and Sender");
        return NULL;
    }
    Rewriter *rewriter = (Rewriter *)args[0];
    Sender *sender = (Sender *)args[1];
    PyObject *seqs = args[5], *packets = args[6];
    double now = PyFloat_AsDouble(args[4]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    Py_ssize_t ring = 0;
    if (seqs != Py_None) {
        if (!PyList_CheckExact(seqs) || !PyList_CheckExact(packets) || PyList_GET_SIZE(seqs) != PyList_GET_SIZE(packets)
            || PyList_GET_SIZE(seqs) == 0 || (PyList_GET_SIZE(seqs) & (PyList_GET_SIZE(seqs) - 1)) != 0) {
            PyErr_SetString(PyExc_TypeError, "seqs and packets: two lists of one power-of-two size, or None");
            return NULL;
        }
        ring = PyList_GET_SIZE(seqs);
    }
    Py_ssize_t size = 0;
    PyObject *data = rewrite_impl(rewriter, args[2], args[3], now, &size);
    if (data == NULL || data == Py_None)
        return data;
    int usable = sender->connected && sender->dtls != NULL && sender->nominated != NULL && sender->pair != NULL;
    if (usable) {
        PyObject *pair = PyDict_GetItemWithError(sender->nominated, number_one); /* borrowed */
        if (pair == NULL && PyErr_Occurred())
            goto error;
        usable = pair == sender->pair;
    }
    if (usable) {
        PyObject *session = PyObject_GetAttr(sender->dtls, name_tx_srtp);
        if (session == NULL)
            goto error;
        usable = session == sender->session;
        Py_DECREF(session);
    }
    if (!usable)
        return data; /* the Python path sends it (and makes a new sender, if it can) */
    int length = 0;
    int result = protect_send(sender, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &length);
    if (result == SEND_ERROR)
        goto error;
    if (result == SEND_CLOSING) {
        Py_DECREF(data);
        return PyLong_FromLong(-1);
    }
    if (result == SEND_BACK) {
        PyObject *datagram = PyBytes_FromStringAndSize((const char *)sender->scratch, length);
        if (datagram == NULL)
            goto error;
        PyObject *done = PyObject_CallMethodObjArgs(sender->transport, name_sendto, datagram, sender->remote, NULL);
        Py_DECREF(datagram);
        if (done == NULL)
            goto error;
        Py_DECREF(done);
    }
    sender->forwarded += 1;
    if (ring) {
        const unsigned char *o = (const unsigned char *)PyBytes_AS_STRING(data);
        long seq = ((long)o[2] << 8) | o[3];
        PyObject *number = PyLong_FromLong(seq);
        if (number == NULL)
            goto error;
        Py_ssize_t place = seq & (ring - 1);
        PyList_SetItem(seqs, place, number); /* steals number, releases what was there */
        PyList_SetItem(packets, place, data); /* steals our reference to data */
    }
    else {
        Py_DECREF(data);
    }
    return PyLong_FromSsize_t(size);

error:
    Py_DECREF(data);
    return NULL;
}

static PyMethodDef native_functions[] = {
    {"forward", (PyCFunction)(void (*)(void))native_forward, METH_FASTCALL,
     "forward(rewriter, sender, packet, source, now, seqs, packets) -> None | int | bytes (see sfu/native.py)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sfu._native",
    .m_doc = "The SFU's per-packet send path in C (see sfu/native.py).",
    .m_size = -1,
    .m_methods = native_functions,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (PyType_Ready(&SenderType) < 0)
        return NULL;
    if (PyType_Ready(&RewriterType) < 0)
        return NULL;
    name_is_closing = PyUnicode_InternFromString("is_closing");
    name_get_write_buffer_size = PyUnicode_InternFromString("get_write_buffer_size");
    name_sequence_number = PyUnicode_InternFromString("sequence_number");
    name_timestamp = PyUnicode_InternFromString("timestamp");
    name_ssrc = PyUnicode_InternFromString("ssrc");
    name_marker = PyUnicode_InternFromString("marker");
    name_payload = PyUnicode_InternFromString("payload");
    name_extensions = PyUnicode_InternFromString("extensions");
    name_audio_level = PyUnicode_InternFromString("audio_level");
    name_tx_srtp = PyUnicode_InternFromString("_tx_srtp");
    name_sendto = PyUnicode_InternFromString("sendto");
    number_one = PyLong_FromLong(1);
    if (name_tx_srtp == NULL || name_sendto == NULL || number_one == NULL)
        return NULL;
    if (name_is_closing == NULL || name_get_write_buffer_size == NULL || name_sequence_number == NULL || name_timestamp == NULL || name_ssrc == NULL ||
        name_marker == NULL || name_payload == NULL || name_extensions == NULL || name_audio_level == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL)
        return NULL;
    SrtpError = PyErr_NewExceptionWithDoc("sfu._native.SrtpError",
                                          "libsrtp refused to protect a packet: args (status, message)",
                                          PyExc_RuntimeError, NULL);
    if (SrtpError == NULL || PyModule_AddObjectRef(module, "SrtpError", SrtpError) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Sender", (PyObject *)&SenderType) < 0 ||
        PyModule_AddObjectRef(module, "Rewriter", (PyObject *)&RewriterType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
