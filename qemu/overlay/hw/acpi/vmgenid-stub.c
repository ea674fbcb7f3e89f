/*
 * VM Generation ID: QMP for builds without the device
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-machine.h"

GuidInfo *qmp_query_vm_generation_id(Error **errp)
{
    error_setg(errp, "this QEMU has no vmgenid device");
    return NULL;
}

void qmp_set_vm_generation_id(const char *guid, Error **errp)
{
    error_setg(errp, "this QEMU has no vmgenid device");
}
