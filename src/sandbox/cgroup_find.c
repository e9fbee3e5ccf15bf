/*
 * Discovery of the cgroup hierarchies: which are mounted where (from
 * /proc/self/mountinfo) and which group the supervisor is in within each
 * (from /proc/self/cgroup). Only reads text; nothing here touches a
 * control file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agentnet/common.h"
#include "sandbox/cgroup_internal.h"

/* The v1 controller that carries each resource. */
static const char *const v1_controllers[AN__CGROUP_RESOURCE_COUNT] = {"memory", "pids", "cpuacct"};

#define LINE_MAX_BYTES 4096
#define FIELD_MAX 64


/* Decodes the octal escapes (\040 for a space) that mountinfo uses in paths, in place. */
static void unescape_octal(char *text)
{
    char *out = text;
    for (const char *in = text; *in != '\0'; in++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 3;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
}


/* 1 when the comma-separated list contains word. */
static int comma_list_has(const char *list, const char *word)
{
    size_t word_len = strlen(word);
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == word_len && strncmp(p, word, len) == 0)
            return 1;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}


/* Copies the line starting at text into line and returns the next one, or NULL at the end. */
static const char *next_line(const char *text, char *line, size_t line_len, int *too_long)
{
    if (*text == '\0')
        return NULL;
    size_t len = strcspn(text, "\n");
    *too_long = len >= line_len;
    if (!*too_long) {
        memcpy(line, text, len);
        line[len] = '\0';
    }
    return text[len] == '\n' ? text + len + 1 : text + len;
}


/*
 * Finds the supervisor's group in one hierarchy: the path on the
 * /proc/self/cgroup line for controller, or on the "0::" line when
 * controller is NULL (cgroup v2). Returns 1 when found.
 */
static int find_self_path(const char *self_cgroup, const char *controller, char *path,
                          size_t path_len)
{
    char line[LINE_MAX_BYTES];
    int too_long;
    const char *text = self_cgroup;
    while ((text = next_line(text, line, sizeof(line), &too_long)) != NULL) {
        if (too_long)
            continue;
        /* hierarchy-id:controller-list:path */
        char *first = strchr(line, ':');
        char *second = first ? strchr(first + 1, ':') : NULL;
        if (!second)
            continue;
        *first = '\0';
        *second = '\0';
        const char *controllers = first + 1;

        int match = controller ? comma_list_has(controllers, controller)
                               : strcmp(line, "0") == 0 && controllers[0] == '\0';
        if (match && strlen(second + 1) < path_len) {
            strcpy(path, second + 1);
            return 1;
        }
    }
    return 0;
}


/*
 * Places the supervisor's group self_path inside a mount of mount_root at
 * mount_point, prefixed with root. Returns 0, or 1 with the reason in
 * hierarchy->problem when the group is not visible in that mount.
 */
static int place_own_group(an__sbx_cgroup_hierarchy_t *hierarchy, const char *root,
                           const char *mount_point, const char *mount_root, const char *self_path,
                           const char *name)
{
    /* A mount of a subtree ("root" field other than "/") shows only the
     * groups below it, with that prefix taken off. */
    const char *rest = self_path;
    size_t root_len = strlen(mount_root);
    if (strcmp(mount_root, "/") != 0) {
        if (strncmp(self_path, mount_root, root_len) != 0 ||
            (self_path[root_len] != '\0' && self_path[root_len] != '/')) {
            an__sbx_cgroup_format(
                hierarchy->problem, sizeof(hierarchy->problem),
                "the supervisor's %s group %s is outside the subtree %s mounted at %s", name,
                self_path, mount_root, mount_point);
            return 1;
        }
        rest = self_path + root_len;
    }
    if (strcmp(rest, "/") == 0)
        rest = "";

    int n = snprintf(hierarchy->own_dir, sizeof(hierarchy->own_dir), "%s%s%s", root,
                     strcmp(mount_point, "/") == 0 ? "" : mount_point, rest);
    int m = snprintf(hierarchy->mount_dir, sizeof(hierarchy->mount_dir), "%s%s", root, mount_point);
    if (n < 0 || (size_t)n >= sizeof(hierarchy->own_dir) || m < 0 ||
        (size_t)m >= sizeof(hierarchy->mount_dir)) {
        an__sbx_cgroup_format(hierarchy->problem, sizeof(hierarchy->problem),
                              "the path of the supervisor's %s group is longer than %d bytes", name,
                              AN__CGROUP_PATH_MAX - 1);
        return 1;
    }
    hierarchy->problem[0] = '\0';
    return 0;
}


/* Records one cgroup or cgroup2 mount in layout, unless an earlier mount already serves it. */
static void add_mount(an__sbx_cgroup_layout_t *layout, const char *self_cgroup, const char *root,
                      const char *fstype, const char *mount_root, const char *mount_point,
                      const char *super_options)
{
    char self_path[AN__CGROUP_PATH_MAX];

    if (strcmp(fstype, "cgroup2") == 0) {
        an__sbx_cgroup_hierarchy_t *v2 = &layout->v2;
        if (v2->version != 0)
            return;
        if (!find_self_path(self_cgroup, NULL, self_path, sizeof(self_path))) {
            an__sbx_cgroup_format(
                v2->problem, sizeof(v2->problem),
                "/proc/self/cgroup has no \"0::\" line for the cgroup v2 hierarchy at %s",
                mount_point);
            return;
        }
        if (place_own_group(v2, root, mount_point, mount_root, self_path, "cgroup v2") == 0)
            v2->version = 2;
        return;
    }

    for (int r = 0; r < AN__CGROUP_RESOURCE_COUNT; r++) {
        an__sbx_cgroup_hierarchy_t *v1 = &layout->v1[r];
        if (v1->version != 0 || !comma_list_has(super_options, v1_controllers[r]))
            continue;
        if (!find_self_path(self_cgroup, v1_controllers[r], self_path, sizeof(self_path))) {
            an__sbx_cgroup_format(
                v1->problem, sizeof(v1->problem),
                "/proc/self/cgroup has no line for the cgroup v1 %s hierarchy at %s",
                v1_controllers[r], mount_point);
            continue;
        }
        if (place_own_group(v1, root, mount_point, mount_root, self_path, v1_controllers[r]) == 0)
            v1->version = 1;
    }
}


void an__sbx_cgroup_find(const char *mountinfo, const char *self_cgroup, const char *root,
                         an__sbx_cgroup_layout_t *layout)
{
    memset(layout, 0, sizeof(*layout));

    char line[LINE_MAX_BYTES];
    int too_long;
    const char *text = mountinfo;
    while ((text = next_line(text, line, sizeof(line), &too_long)) != NULL) {
        if (too_long)
            continue;

        /* Fields: id parent major:minor root mount-point options,
         * optional fields, "-", fstype source super-options. */
        char *fields[FIELD_MAX];
        int count = 0;
        char *save = NULL;
        for (char *field = strtok_r(line, " ", &save); field && count < FIELD_MAX;
             field = strtok_r(NULL, " ", &save))
            fields[count++] = field;

        int dash = 6;
        while (dash < count && strcmp(fields[dash], "-") != 0)
            dash++;
        if (dash + 3 >= count)
            continue;

        const char *fstype = fields[dash + 1];
        if (strcmp(fstype, "cgroup") != 0 && strcmp(fstype, "cgroup2") != 0)
            continue;
        unescape_octal(fields[3]);
        unescape_octal(fields[4]);
        add_mount(layout, self_cgroup, root, fstype, fields[3], fields[4], fields[dash + 3]);
    }
}


int an__sbx_cgroup_find_self(an__sbx_cgroup_layout_t *layout, char *err, size_t err_len)
{
    an_buf_t mountinfo = {0};
    an_buf_t self_cgroup = {0};

    const char *failed = "/proc/self/mountinfo";
    int rc = an__sbx_cgroup_read_all("/proc/self", "mountinfo", &mountinfo);
    if (rc == 0) {
        failed = "/proc/self/cgroup";
        rc = an__sbx_cgroup_read_all("/proc/self", "cgroup", &self_cgroup);
    }
    if (rc != 0) {
        an__sbx_cgroup_format(err, err_len, "cannot read %s (%s)", failed, strerror(rc));
        rc = rc == ENOMEM ? AN_ENOMEM : AN_EIO;
    } else {
        an__sbx_cgroup_find(mountinfo.data ? mountinfo.data : "",
                            self_cgroup.data ? self_cgroup.data : "", "", layout);
    }

    an_buf_free(&mountinfo);
    an_buf_free(&self_cgroup);
    return rc;
}
