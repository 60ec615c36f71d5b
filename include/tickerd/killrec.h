/* killrec.h - the worker's side of kill confirmation (SPEC §7): what the
 * hub reports of labelled screens, written to the record in Redis that
 * every node shares (<stream>:kill:<retract id>, kill.h), through the
 * worker's command connection. Names this node in it. */
#ifndef TICKERD_KILLREC_H
#define TICKERD_KILLREC_H

#include <stddef.h>

#include "tickerd/history.h"
#include "tickerd/hub.h"
#include "tickerd/writer.h"

typedef struct tk_killrec tk_killrec_t;

/* A recorder for stream (copied) writing through the worker's command
 * connection w (which outlives it); the node's name is "<hostname>:<pid>".
 * NULL when out of memory. */
tk_killrec_t *tk_killrec_create(const char *stream, tk_writer_t *w);
void tk_killrec_free(tk_killrec_t *kr);
/* The hooks to give the hub (tk_hub_set_kill_hooks). */
tk_kill_hooks_t tk_killrec_hooks(tk_killrec_t *kr);
const char *tk_killrec_node(const tk_killrec_t *kr);

/* Around the hub's publish of a live retract: the screens it is routed to
 * are written with it in one HSET (with the ref field and the ref key), so
 * that a node's part of the record appears whole. */
void tk_killrec_begin(tk_killrec_t *kr, const tk_event_t *retract);
void tk_killrec_end(tk_killrec_t *kr);

#endif
