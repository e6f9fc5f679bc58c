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

{{/* What every kopf operator needs: its peering, the CRD scan, Events. */}}
{{- define "argora.kopfRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings, kopfpeerings]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .c.watchNamespaces }}
# kopf lists namespaces to follow the watched ones.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end -}}

{{/* Least privilege: only the verbs and resources each controller uses. */}}
{{- define "argora.rules.ironcore" -}}
- apiGroups: [argora.cloud.sap]
  resources: [clusterimports]
  verbs: [get, list, watch, patch, update]
- apiGroups: [argora.cloud.sap]
  resources: [clusterimports/status]
  verbs: [get, patch]
- apiGroups: [metal.ironcore.dev]
  resources: [bmcs, bmcsecrets]
  verbs: [get, list, watch, create, patch, delete]
# BMC credentials named by ClusterImports, and the default Secret: read only.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}

{{- define "argora.rules.metal3" -}}
# Clusters belong to Cluster API: we watch them and patch only our sync-status annotation.
- apiGroups: [cluster.x-k8s.io]
  resources: [clusters]
  verbs: [get, list, watch, patch]
# Watched (ours only, by label) so that passes know the live objects without listing them.
- apiGroups: [metal3.io]
  resources: [baremetalhosts]
  verbs: [get, list, watch, create, patch, delete]
# BMC credentials and networkData Secrets next to the hosts.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{- define "argora.rules.update" -}}
- apiGroups: [argora.cloud.sap]
  resources: [updates]
  verbs: [get, list, watch, patch, update]
- apiGroups: [argora.cloud.sap]
  resources: [updates/status]
  verbs: [get, patch]
{{- end -}}

{{- define "argora.rules.ippool" -}}
- apiGroups: [argora.cloud.sap]
  resources: [ippoolimports]
  verbs: [get, list, watch, patch, update]
- apiGroups: [argora.cloud.sap]
  resources: [ippoolimports/status]
  verbs: [get, patch]
# GlobalInClusterIPPools are cluster-scoped: this ClusterRole covers them even with watchNamespaces.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [globalinclusterippools]
  verbs: [get, list, watch, create, patch, delete]
# IPAddresses are the IPAM provider's to write: read only, in every namespace, to know which pools are in use.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [ipaddresses]
  verbs: [get, list, watch]
{{- end -}}

{{- define "argora.rules.ipaddress" -}}
# IPAddresses belong to the IPAM provider: patch only for argora-ipaddress's annotations (device and
# interface ids, conflicts, sync status), never a finalizer. All of these are read in every namespace,
# whatever watchNamespaces says.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [ipaddresses]
  verbs: [get, list, watch, patch]
# The claim behind an address and the pool it came from: read only.
- apiGroups: [ipam.cluster.x-k8s.io]
  resources: [ipaddressclaims, globalinclusterippools]
  verbs: [get, list, watch]
# From a claim to the server and its BMC, hence the NetBox device: read only.
- apiGroups: [metal.ironcore.dev]
  resources: [serverclaims, servers, bmcs]
  verbs: [get, list, watch]
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
{{- end -}}
