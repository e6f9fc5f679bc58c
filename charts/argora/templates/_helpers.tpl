{{/* Name of one controller's objects: <release>-<controller>, at most 63 characters. */}}
{{- define "argora.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "argora.labels" -}}
app.kubernetes.io/name: argora-{{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/part-of: argora
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "argora.selectorLabels" -}}
app.kubernetes.io/name: argora-{{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* "true" for the controllers that follow NetBox's change log and can take its webhook; argora-ipaddress
does not read NetBox's changes. */}}
{{- define "argora.followsChanges" -}}
{{- if has .name (list "ironcore" "metal3" "update" "ippool") }}true{{ end -}}
{{- end -}}

{{/* "true" when a controller serves NetBox's webhook: its own webhook.enabled, the top-level one when
that is null. */}}
{{- define "argora.webhookEnabled" -}}
{{- if include "argora.followsChanges" . -}}
{{- $own := dig "webhook" "enabled" nil .c -}}
{{- if kindIs "invalid" $own }}{{ if .root.Values.webhook.enabled }}true{{ end }}{{ else if $own }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/* RBAC. Each controller's rules come in two parts: "cluster" rules, granted by its ClusterRole whatever
watchNamespaces says (cluster-scoped kinds, and what it reads or writes in every namespace), and
"namespaced" rules: also in the ClusterRole when it watches the whole cluster, else granted by a Role in
each watched namespace alone, so that a controller limited to namespaces reads no Secret elsewhere. Only
the verbs the code uses: kopf and argora_common/kube.py read with list + watch (GET only for the BMCs,
credentials Secrets and the Lease), write with merge or server-side-apply PATCH, create Events and
delete with DELETE; nothing sends PUT (update) or deletecollection. */}}

{{/* kopf's own needs wherever it runs: the CRD scan (list + watch, to see resources appear) and, limited
to namespaces, the namespace scan that follows the watched ones. */}}
{{- define "argora.rules.kopf.cluster" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .c.watchNamespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end -}}

{{/* "own" rules: what a controller needs in the release's namespace alone (ARGORA_OWN_NAMESPACE), granted
by a Role <fullname>-own there, rendered only when they are not empty. */}}

{{/* The Lease electing the controller's active replica (argora_common.peering): argora-<controller>, read
and merge-patched by name (the patch carries the resourceVersion read); created by the first replica, and
create cannot be limited to a name. Every controller has one, standalone or not. */}}
{{- define "argora.rules.lease.own" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [argora-{{ .name }}]
  verbs: [get, patch]
{{- end -}}

{{/* The webhook Service's EndpointSlice (argora_common.webhook_endpoint): read and server-side applied
by name; applying creates it when missing, and create cannot be limited to a name. */}}
{{- define "argora.rules.webhook.own" -}}
{{- if include "argora.webhookEnabled" . }}
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [create]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  resourceNames: [{{ printf "%s-webhook" (include "argora.fullname" .) | quote }}]
  verbs: [get, patch]
{{- end }}
{{- end -}}

{{- define "argora.rules.ironcore.own" -}}
{{- include "argora.rules.lease.own" . }}
{{- include "argora.rules.webhook.own" . }}
{{- end -}}

{{/* Who holds which NetBox cluster (metal3_controller.claims): one ConfigMap of a fixed name, read and
applied by name; created when missing, and create cannot be limited to a name. */}}
{{- define "argora.rules.metal3.own" -}}
{{- include "argora.rules.lease.own" . }}
{{- include "argora.rules.webhook.own" . }}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [argora-metal3-claims]
  verbs: [get, patch]
{{- end -}}

{{- define "argora.rules.update.own" -}}
{{- include "argora.rules.lease.own" . }}
{{- include "argora.rules.webhook.own" . }}
{{- end -}}

{{- define "argora.rules.ippool.own" -}}
{{- include "argora.rules.lease.own" . }}
{{- include "argora.rules.webhook.own" . }}
{{- end -}}

{{- define "argora.rules.ipaddress.own" -}}
{{- include "argora.rules.lease.own" . }}
{{- end -}}

{{- define "argora.rules.ironcore.cluster" -}}
- apiGroups: [metal.ironcore.dev]
  resources: [bmcs, bmcsecrets]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{- define "argora.rules.ironcore.namespaced" -}}
- apiGroups: [argora.cloud.sap]
  resources: [clusterimports]
  verbs: [list, watch, patch]
- apiGroups: [argora.cloud.sap]
  resources: [clusterimports/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The BMC credentials a ClusterImport names, next to it: read only.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}

{{- define "argora.rules.metal3.cluster" -}}
{{- end -}}

{{- define "argora.rules.metal3.namespaced" -}}
# Clusters belong to Cluster API: we watch them and patch only our sync-status annotation.
- apiGroups: [cluster.x-k8s.io]
  resources: [clusters]
  verbs: [list, watch, patch]
# Watched (ours only, by label) so that passes know the live objects without listing them.
- apiGroups: [metal3.io]
  resources: [baremetalhosts]
  verbs: [list, watch, create, patch, delete]
# BMC credentials and networkData Secrets next to the hosts, and the credentials a Cluster names.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "argora.rules.update.cluster" -}}
{{- end -}}

{{- define "argora.rules.update.namespaced" -}}
# Only watched: argora-update cleans up nothing when an Update goes, so kopf puts no finalizer on it.
- apiGroups: [argora.cloud.sap]
  resources: [updates]
  verbs: [list, watch]
- apiGroups: [argora.cloud.sap]
  resources: [updates/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "argora.rules.ippool.cluster" -}}
# GlobalInClusterIPPools are cluster-scoped.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [globalinclusterippools]
  verbs: [list, create, patch, delete]
# IPAddresses are the IPAM provider's to write: read only, in every namespace, to know which pools are in use.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [ipaddresses]
  verbs: [list]
{{- end -}}

{{- define "argora.rules.ippool.namespaced" -}}
- apiGroups: [argora.cloud.sap]
  resources: [ippoolimports]
  verbs: [list, watch, patch]
- apiGroups: [argora.cloud.sap]
  resources: [ippoolimports/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* argora-ipaddress's passes read every namespace, whatever watchNamespaces says, and post Events on the
addresses they found there: all of it is cluster-wide. */}}
{{- define "argora.rules.ipaddress.cluster" -}}
# IPAddresses belong to the IPAM provider: patch only for argora-ipaddress's annotations (device and
# interface ids, conflicts, sync status) and to take the original operator's finalizer off an IPAddress
# whose release it did; never a finalizer of its own.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [ipaddresses]
  verbs: [list, watch, patch]
# The claim behind an address and the pool it came from: read only.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [ipaddressclaims, globalinclusterippools]
  verbs: [list]
# From a claim to the server and its BMC, hence the NetBox device: read only.
- apiGroups: [metal.ironcore.dev]
  resources: [serverclaims, servers, bmcs]
  verbs: [list]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "argora.rules.ipaddress.namespaced" -}}
{{- end -}}

{{/* The Secret of defaultBmcCredentials as "namespace" and "name", for the controllers that read it
(argora-ironcore and argora-metal3), when watchNamespaces leaves its namespace out: a Role there lets
them GET that one Secret and no other. Empty otherwise. */}}
{{- define "argora.defaultCredentialsOutsideWatched" -}}
{{- $ref := .root.Values.defaultBmcCredentials -}}
{{- if and $ref .c.watchNamespaces (has .name (list "ironcore" "metal3")) -}}
{{- $parts := splitList "/" $ref -}}
{{- if not (has (first $parts) .c.watchNamespaces) -}}
{{- dict "namespace" (first $parts) "name" (last $parts) | toJson -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Controller-specific settings as ARGORA_* variables. */}}
{{- define "argora.env.ironcore" -}}
{{- if .c.bmcProtocols }}
- name: ARGORA_BMC_PROTOCOLS
  value: {{ .c.bmcProtocols | toJson | quote }}
{{- end }}
{{- end -}}

{{- define "argora.env.metal3" -}}
{{- if .c.bmcAddresses }}
- name: ARGORA_BMC_ADDRESSES
  value: {{ .c.bmcAddresses | toJson | quote }}
{{- end }}
{{- if .c.rootDeviceHints }}
- name: ARGORA_ROOT_DEVICE_HINTS
  value: {{ .c.rootDeviceHints | toJson | quote }}
{{- end }}
{{- if not (kindIs "invalid" .c.disableCertificateVerification) }}
- name: ARGORA_DISABLE_CERTIFICATE_VERIFICATION
  value: {{ .c.disableCertificateVerification | quote }}
{{- end }}
{{- if .c.allowedNetboxClusters }}
- name: ARGORA_ALLOWED_NETBOX_CLUSTERS
  value: {{ .c.allowedNetboxClusters | toJson | quote }}
{{- end }}
{{- if .c.roleTags }}
- name: ARGORA_ROLE_TAGS
  value: {{ .c.roleTags | toJson | quote }}
{{- end }}
- name: ARGORA_NETWORK_DATA
  value: {{ .c.networkData | quote }}
- name: ARGORA_GATEWAY_CUSTOM_FIELD
  value: {{ .c.gatewayCustomField | quote }}
{{- end -}}

{{- define "argora.env.update" -}}
{{- end -}}

{{- define "argora.env.ippool" -}}
- name: ARGORA_GATEWAY_CUSTOM_FIELD
  value: {{ .c.gatewayCustomField | quote }}
{{- end -}}

{{- define "argora.env.ipaddress" -}}
- name: ARGORA_POOL_SCOPE
  value: {{ .c.poolScope | quote }}
- name: ARGORA_POOL_NAMES
  value: {{ join "," .c.poolNames | quote }}
- name: ARGORA_LAG_INTERFACE_PATTERN
  value: {{ .c.lagInterfacePattern | quote }}
- name: ARGORA_CREATED_TAG
  value: {{ .c.createdTag | quote }}
- name: ARGORA_DRY_RUN
  value: {{ .c.dryRun | quote }}
- name: ARGORA_MAX_DELETES_PER_PASS
  value: {{ .c.maxDeletesPerPass | quote }}
- name: ARGORA_RELEASE_BREAKER_PERCENT
  value: {{ .c.releaseBreakerPercent | quote }}
{{- end -}}
