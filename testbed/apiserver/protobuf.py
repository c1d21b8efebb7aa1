"""Kubernetes protobuf request bodies read into the dict the same request would have carried as JSON. Pure.

Why: kubectl's imperative commands (``create deployment|namespace|configmap|secret|service|serviceaccount|job|
cronjob|role|rolebinding|clusterrole|clusterrolebinding|quota``, ``create job --from``, ``auth can-i``) go
through client-go's typed clients, which send ``Content-Type: application/vnd.kubernetes.protobuf`` and never
retry as JSON after a 415 (checked with kubectl 1.32.4 and 1.37.1, which send byte-identical bodies; ``run``,
``expose`` and ``scale`` send JSON). The server answers JSON, which the same clients accept (``Accept:
application/vnd.kubernetes.protobuf,application/json``).

The facts this module is built on:

- **Envelope** [apimachinery pkg/runtime/serializer/protobuf/protobuf.go ``protoEncodingPrefix``]: the bytes
  ``k8s\\x00``, then a ``runtime.Unknown`` [pkg/runtime/generated.proto]: 1 ``typeMeta`` (1 apiVersion,
  2 kind), 2 ``raw`` (the object's own message), 3 ``contentEncoding``, 4 ``contentType``. The object's
  message has no TypeMeta of its own (its Go field carries no protobuf tag): apiVersion and kind come from here.
- **Wire format** (protobuf encoding spec): tag = field number << 3 | wire type; 0 varint, 1 fixed 64-bit,
  2 length-delimited, 5 fixed 32-bit. int32 and int64 are plain varints (no zig-zag); a negative int32 is
  sign-extended to ten bytes. A map is a repeated entry message (1 key, 2 value). Unknown fields are skipped.
- **Messages and field numbers** [k8s.io/api ``<group>/<version>/generated.proto``; apimachinery
  pkg/apis/meta/v1, pkg/util/intstr, pkg/api/resource ``generated.proto``], with the JSON name and Go
  field shape taken from the ``json:`` and ``protobuf:`` struct tags of the same packages' ``types.go``
  (the proto field names are the JSON names, except where a Go struct is embedded ``json:",inline"``:
  Volume's VolumeSource, Probe's ProbeHandler, the key selectors' LocalObjectReference; written ``...``).
- **Special JSON forms.** ``Time`` {1 seconds, 2 nanos} is RFC 3339 to the second (upstream's Unmarshal
  drops the nanos too), ``MicroTime`` to the microsecond, both in UTC [meta/v1 time_proto.go, time.go,
  micro_time.go]. The zero time marshals to an empty message, read as no field at all, as the ``omitzero``
  tag of ``creationTimestamp`` has it since Kubernetes 1.34 (kubectl 1.32 still wrote ``null``; readers
  treat both alike). ``IntOrString`` {1 type, 2 intVal, 3 strVal} is a number or a string [intstr.go],
  ``Quantity`` {1 string} its string [resource/quantity_proto.go], and ``bytes`` (Secret data, ConfigMap
  binaryData) base64, as Go's JSON writes a ``[]byte``.

**Zero values.** The generated Go marshaller writes every non-pointer scalar, zero or not, and a pointer
field only when it is set; JSON (``encoding/json``) writes a non-pointer field unless its tag says
``omitempty`` and the value is zero. So a scalar decoded as zero is dropped unless the Go field is a pointer
(present on the wire means set: ``replicas: 0``, ``automountServiceAccountToken: false``) or its tag has no
``omitempty`` (``containerPort``, ``port``, a container's ``name``); those fields carry ``!`` in
``MESSAGES``, copied from ``types.go``. One exception: ``autoscaling/v1 ScaleSpec.replicas`` (not a pointer,
``omitempty``) keeps 0, which Go reads from an absent field but a dict reader might not. Nested messages are
always kept, even empty (``encoding/json`` never omits a struct: ``"status": {}``, ``"resources": {}``);
lists and maps are absent when empty, as on the wire (kubectl's JSON writes ``null`` for the few without
``omitempty``, e.g. a rules review's ``resourceRules``). With this rule ``decode`` gives exactly what kubectl
1.37's ``--dry-run=client -o json`` prints for the bodies in tests/data/protobuf/.

**Coverage.** The kinds in ``KINDS``, each with the nested messages their imperative commands and usual
manifests set; fields left out (affinity, topology spread, ephemeral containers, resource claims, most volume
sources, job failure and success policies) and the status of workloads, Pods and Services (which clients do
not set, and the server overwrites) are skipped like unknown fields.
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

SCALARS = ("string", "bytes", "bool", "int32", "int64")
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class UnsupportedKind(ValueError):
    """A well-formed body for an (apiVersion, kind) this module has no schema for."""


@dataclass(frozen=True)
class Field:
    """One field of a message: its JSON name ("" when inlined into the parent), the type (a scalar in
    ``SCALARS`` or a message name), list/map/one, and whether a zero value is kept (see module docstring)."""

    name: str
    type: str
    shape: str = "one"  # "one" | "list" | "map" (map<string, type>)
    keep_zero: bool = False


# Each message: "number jsonName [type][!]" items; the type defaults to string, [T] is repeated, {T} is
# map<string, T>, a bare message name is in the same package, "..." as the name inlines the message's fields
# into the parent (Go's json:",inline"), and "!" keeps a zero value (Go pointer or no omitempty).
_SCHEMA: dict[str, str] = {
    # k8s.io/api core/v1/generated.proto
    "core.Namespace": "1 metadata meta.ObjectMeta, 2 spec NamespaceSpec, 3 status NamespaceStatus",
    "core.NamespaceSpec": "1 finalizers [string]",
    "core.NamespaceStatus": "1 phase",
    # Pod and PodSpec, with the volume sources kubectl and manifests use (the others are skipped)
    "core.Pod": "1 metadata meta.ObjectMeta, 2 spec PodSpec, 3 status PodStatus",
    "core.PodSpec": (
        "1 volumes [Volume], 2 containers [Container], 3 restartPolicy, 4 terminationGracePeriodSeconds int64!, "
        "5 activeDeadlineSeconds int64!, 6 dnsPolicy, 7 nodeSelector {string}, 8 serviceAccountName, "
        "9 serviceAccount, 10 nodeName, 11 hostNetwork bool, 12 hostPID bool, 13 hostIPC bool, "
        "14 securityContext PodSecurityContext, 15 imagePullSecrets [LocalObjectReference], 16 hostname, "
        "17 subdomain, 19 schedulerName, 20 initContainers [Container], 21 automountServiceAccountToken bool!, "
        "22 tolerations [Toleration], 23 hostAliases [HostAlias], 24 priorityClassName, 25 priority int32!, "
        "26 dnsConfig PodDNSConfig, 27 shareProcessNamespace bool!, 28 readinessGates [PodReadinessGate], "
        "29 runtimeClassName!, 30 enableServiceLinks bool!, 31 preemptionPolicy!, 32 overhead {resource.Quantity}, "
        "35 setHostnameAsFQDN bool!, 36 os PodOS, 37 hostUsers bool!, 40 resources ResourceRequirements, "
        "41 hostnameOverride!"
    ),
    "core.Volume": "1 name!, 2 ... VolumeSource",
    "core.VolumeSource": (
        "1 hostPath HostPathVolumeSource, 2 emptyDir EmptyDirVolumeSource, 6 secret SecretVolumeSource, "
        "7 nfs NFSVolumeSource, 10 persistentVolumeClaim PersistentVolumeClaimVolumeSource, "
        "16 downwardAPI DownwardAPIVolumeSource, 19 configMap ConfigMapVolumeSource, 30 image ImageVolumeSource"
    ),
    "core.HostPathVolumeSource": "1 path!, 2 type!",
    "core.EmptyDirVolumeSource": "1 medium, 2 sizeLimit resource.Quantity, 3 mode int32!",
    "core.SecretVolumeSource": (
        "1 secretName, 2 items [KeyToPath], 3 defaultMode int32!, 4 optional bool!, 5 defaultUser int64!"
    ),
    "core.KeyToPath": "1 key!, 2 path!, 3 mode int32!, 4 user int64!",
    "core.NFSVolumeSource": "1 server!, 2 path!, 3 readOnly bool",
    "core.PersistentVolumeClaimVolumeSource": "1 claimName!, 2 readOnly bool",
    "core.DownwardAPIVolumeSource": "1 items [DownwardAPIVolumeFile], 2 defaultMode int32!, 3 defaultUser int64!",
    "core.DownwardAPIVolumeFile": (
        "1 path!, 2 fieldRef ObjectFieldSelector, 3 resourceFieldRef ResourceFieldSelector, 4 mode int32!, "
        "5 user int64!"
    ),
    "core.ObjectFieldSelector": "1 apiVersion, 2 fieldPath!",
    "core.ResourceFieldSelector": "1 containerName, 2 resource!, 3 divisor resource.Quantity",
    "core.ConfigMapVolumeSource": (
        "1 ... LocalObjectReference, 2 items [KeyToPath], 3 defaultMode int32!, 4 optional bool!, "
        "5 defaultUser int64!"
    ),
    "core.LocalObjectReference": "1 name",
    "core.ImageVolumeSource": "1 reference, 2 pullPolicy",
    # Container and what it holds
    "core.Container": (
        "1 name!, 2 image, 3 command [string], 4 args [string], 5 workingDir, 6 ports [ContainerPort], "
        "7 env [EnvVar], 8 resources ResourceRequirements, 9 volumeMounts [VolumeMount], 10 livenessProbe Probe, "
        "11 readinessProbe Probe, 12 lifecycle Lifecycle, 13 terminationMessagePath, 14 imagePullPolicy, "
        "15 securityContext SecurityContext, 16 stdin bool, 17 stdinOnce bool, 18 tty bool, "
        "19 envFrom [EnvFromSource], 20 terminationMessagePolicy, 21 volumeDevices [VolumeDevice], "
        "22 startupProbe Probe, 23 resizePolicy [ContainerResizePolicy], 24 restartPolicy!"
    ),
    "core.ContainerPort": "1 name, 2 hostPort int32, 3 containerPort int32!, 4 protocol, 5 hostIP",
    "core.EnvFromSource": "1 prefix, 2 configMapRef ConfigMapEnvSource, 3 secretRef SecretEnvSource",
    "core.ConfigMapEnvSource": "1 ... LocalObjectReference, 2 optional bool!",
    "core.SecretEnvSource": "1 ... LocalObjectReference, 2 optional bool!",
    "core.EnvVar": "1 name!, 2 value, 3 valueFrom EnvVarSource",
    "core.EnvVarSource": (
        "1 fieldRef ObjectFieldSelector, 2 resourceFieldRef ResourceFieldSelector, "
        "3 configMapKeyRef ConfigMapKeySelector, 4 secretKeyRef SecretKeySelector, 5 fileKeyRef FileKeySelector"
    ),
    "core.ConfigMapKeySelector": "1 ... LocalObjectReference, 2 key!, 3 optional bool!",
    "core.SecretKeySelector": "1 ... LocalObjectReference, 2 key!, 3 optional bool!",
    "core.FileKeySelector": "1 volumeName!, 2 path!, 3 key!, 4 optional bool!",
    "core.ResourceRequirements": (
        "1 limits {resource.Quantity}, 2 requests {resource.Quantity}, 3 claims [ResourceClaim]"
    ),
    "core.ResourceClaim": "1 name!, 2 request",
    "core.ContainerResizePolicy": "1 resourceName!, 2 restartPolicy!",
    "core.VolumeMount": (
        "1 name!, 2 readOnly bool, 3 mountPath!, 4 subPath, 5 mountPropagation!, 6 subPathExpr, "
        "7 recursiveReadOnly!, 8 bindMountOptions [string]"
    ),
    "core.VolumeDevice": "1 name!, 2 devicePath!",
    "core.Probe": (
        "1 ... ProbeHandler, 2 initialDelaySeconds int32, 3 timeoutSeconds int32, 4 periodSeconds int32, "
        "5 successThreshold int32, 6 failureThreshold int32, 7 terminationGracePeriodSeconds int64!"
    ),
    "core.ProbeHandler": "1 exec ExecAction, 2 httpGet HTTPGetAction, 3 tcpSocket TCPSocketAction, 4 grpc GRPCAction",
    "core.ExecAction": "1 command [string]",
    "core.HTTPGetAction": (
        "1 path, 2 port intstr.IntOrString, 3 host, 4 scheme, 5 httpHeaders [HTTPHeader], 6 protocol!"
    ),
    "core.HTTPHeader": "1 name!, 2 value!",
    "core.TCPSocketAction": "1 port intstr.IntOrString, 2 host",
    "core.GRPCAction": "1 port int32!, 2 service!, 3 mode!",
    "core.Lifecycle": "1 postStart LifecycleHandler, 2 preStop LifecycleHandler, 3 stopSignal!",
    "core.LifecycleHandler": (
        "1 exec ExecAction, 2 httpGet HTTPGetAction, 3 tcpSocket TCPSocketAction, 4 sleep SleepAction"
    ),
    "core.SleepAction": "1 seconds int64!",
    # security contexts, scheduling
    "core.SecurityContext": (
        "1 capabilities Capabilities, 2 privileged bool!, 3 seLinuxOptions SELinuxOptions, 4 runAsUser int64!, "
        "5 runAsNonRoot bool!, 6 readOnlyRootFilesystem bool!, 7 allowPrivilegeEscalation bool!, "
        "8 runAsGroup int64!, 9 procMount!, 11 seccompProfile SeccompProfile, 12 appArmorProfile AppArmorProfile"
    ),
    "core.Capabilities": "1 add [string], 2 drop [string]",
    "core.SELinuxOptions": "1 user, 2 role, 3 type, 4 level",
    "core.SeccompProfile": "1 type!, 2 localhostProfile!",
    "core.AppArmorProfile": "1 type!, 2 localhostProfile!",
    "core.PodSecurityContext": (
        "1 seLinuxOptions SELinuxOptions, 2 runAsUser int64!, 3 runAsNonRoot bool!, 4 supplementalGroups [int64], "
        "5 fsGroup int64!, 6 runAsGroup int64!, 7 sysctls [Sysctl], 9 fsGroupChangePolicy!, "
        "10 seccompProfile SeccompProfile, 11 appArmorProfile AppArmorProfile, 12 supplementalGroupsPolicy!, "
        "13 seLinuxChangePolicy!"
    ),
    "core.Sysctl": "1 name!, 2 value!",
    "core.Toleration": "1 key, 2 operator, 3 value, 4 effect, 5 tolerationSeconds int64!",
    "core.HostAlias": "1 ip!, 2 hostnames [string]",
    "core.PodDNSConfig": "1 nameservers [string], 2 searches [string], 3 options [PodDNSConfigOption]",
    "core.PodDNSConfigOption": "1 name, 2 value!",
    "core.PodReadinessGate": "1 conditionType!",
    "core.PodOS": "1 name!",
    "core.PodStatus": "",
    # Service, ConfigMap, Secret, ServiceAccount, ReplicationController, Endpoints, quotas
    "core.Service": "1 metadata meta.ObjectMeta, 2 spec ServiceSpec, 3 status ServiceStatus",
    "core.ServiceSpec": (
        "1 ports [ServicePort], 2 selector {string}, 3 clusterIP, 4 type, 5 externalIPs [string], "
        "7 sessionAffinity, 8 loadBalancerIP, 9 loadBalancerSourceRanges [string], 10 externalName, "
        "11 externalTrafficPolicy, 12 healthCheckNodePort int32, 13 publishNotReadyAddresses bool, "
        "14 sessionAffinityConfig SessionAffinityConfig, 17 ipFamilyPolicy!, 18 clusterIPs [string], "
        "19 ipFamilies [string], 20 allocateLoadBalancerNodePorts bool!, 21 loadBalancerClass!, "
        "22 internalTrafficPolicy!, 23 trafficDistribution!"
    ),
    "core.ServicePort": (
        "1 name, 2 protocol, 3 port int32!, 4 targetPort intstr.IntOrString, 5 nodePort int32, 6 appProtocol!"
    ),
    "core.SessionAffinityConfig": "1 clientIP ClientIPConfig",
    "core.ClientIPConfig": "1 timeoutSeconds int32!",
    "core.ServiceStatus": "1 loadBalancer LoadBalancerStatus",  # a struct: JSON always has "loadBalancer": {}
    "core.LoadBalancerStatus": "",
    "core.ConfigMap": "1 metadata meta.ObjectMeta, 2 data {string}, 3 binaryData {bytes}, 4 immutable bool!",
    "core.Secret": "1 metadata meta.ObjectMeta, 2 data {bytes}, 3 type, 4 stringData {string}, 5 immutable bool!",
    "core.ServiceAccount": (
        "1 metadata meta.ObjectMeta, 2 secrets [ObjectReference], 3 imagePullSecrets [LocalObjectReference], "
        "4 automountServiceAccountToken bool!"
    ),
    "core.ObjectReference": "1 kind, 2 namespace, 3 name, 4 uid, 5 apiVersion, 6 resourceVersion, 7 fieldPath",
    "core.ReplicationController": (
        "1 metadata meta.ObjectMeta, 2 spec ReplicationControllerSpec, 3 status ReplicationControllerStatus"
    ),
    "core.ReplicationControllerSpec": (
        "1 replicas int32!, 2 selector {string}, 3 template PodTemplateSpec, 4 minReadySeconds int32"
    ),
    "core.PodTemplateSpec": "1 metadata meta.ObjectMeta, 2 spec PodSpec",
    "core.ReplicationControllerStatus": "",
    "core.Endpoints": "1 metadata meta.ObjectMeta, 2 subsets [EndpointSubset]",
    "core.EndpointSubset": (
        "1 addresses [EndpointAddress], 2 notReadyAddresses [EndpointAddress], 3 ports [EndpointPort]"
    ),
    "core.EndpointAddress": "1 ip!, 2 targetRef ObjectReference, 3 hostname, 4 nodeName!",
    "core.EndpointPort": "1 name, 2 port int32!, 3 protocol, 4 appProtocol!",
    "core.ResourceQuota": "1 metadata meta.ObjectMeta, 2 spec ResourceQuotaSpec, 3 status ResourceQuotaStatus",
    "core.ResourceQuotaSpec": "1 hard {resource.Quantity}, 2 scopes [string], 3 scopeSelector ScopeSelector",
    "core.ScopeSelector": "1 matchExpressions [ScopedResourceSelectorRequirement]",
    "core.ScopedResourceSelectorRequirement": "1 scopeName!, 2 operator!, 3 values [string]",
    "core.ResourceQuotaStatus": "1 hard {resource.Quantity}, 2 used {resource.Quantity}",
    "core.LimitRange": "1 metadata meta.ObjectMeta, 2 spec LimitRangeSpec",
    "core.LimitRangeSpec": "1 limits [LimitRangeItem]",
    "core.LimitRangeItem": (
        "1 type!, 2 max {resource.Quantity}, 3 min {resource.Quantity}, 4 default {resource.Quantity}, "
        "5 defaultRequest {resource.Quantity}, 6 maxLimitRequestRatio {resource.Quantity}"
    ),
    # k8s.io/apimachinery pkg/apis/meta/v1/generated.proto (Time, MicroTime: see _SPECIAL)
    "meta.ObjectMeta": (
        "1 name, 2 generateName, 3 namespace, 4 selfLink, 5 uid, 6 resourceVersion, 7 generation int64, "
        "8 creationTimestamp Time, 9 deletionTimestamp Time, 10 deletionGracePeriodSeconds int64!, "
        "11 labels {string}, 12 annotations {string}, 13 ownerReferences [OwnerReference], 14 finalizers [string]"
    ),
    "meta.OwnerReference": "1 kind!, 3 name!, 4 uid!, 5 apiVersion!, 6 controller bool!, 7 blockOwnerDeletion bool!",
    "meta.LabelSelector": "1 matchLabels {string}, 2 matchExpressions [LabelSelectorRequirement]",
    "meta.LabelSelectorRequirement": "1 key!, 2 operator!, 3 values [string]",
    # k8s.io/api apps/v1/generated.proto
    "apps.Deployment": "1 metadata meta.ObjectMeta, 2 spec DeploymentSpec, 3 status DeploymentStatus",
    "apps.DeploymentSpec": (
        "1 replicas int32!, 2 selector meta.LabelSelector, 3 template core.PodTemplateSpec, "
        "4 strategy DeploymentStrategy, 5 minReadySeconds int32, 6 revisionHistoryLimit int32!, 7 paused bool, "
        "9 progressDeadlineSeconds int32!"
    ),
    "apps.DeploymentStrategy": "1 type, 2 rollingUpdate RollingUpdateDeployment",
    "apps.RollingUpdateDeployment": "1 maxUnavailable intstr.IntOrString, 2 maxSurge intstr.IntOrString",
    "apps.DeploymentStatus": "",
    "apps.ReplicaSet": "1 metadata meta.ObjectMeta, 2 spec ReplicaSetSpec, 3 status ReplicaSetStatus",
    "apps.ReplicaSetSpec": (
        "1 replicas int32!, 2 selector meta.LabelSelector, 3 template core.PodTemplateSpec, 4 minReadySeconds int32"
    ),
    "apps.ReplicaSetStatus": "",
    "apps.DaemonSet": "1 metadata meta.ObjectMeta, 2 spec DaemonSetSpec, 3 status DaemonSetStatus",
    "apps.DaemonSetSpec": (
        "1 selector meta.LabelSelector, 2 template core.PodTemplateSpec, 3 updateStrategy DaemonSetUpdateStrategy, "
        "4 minReadySeconds int32, 6 revisionHistoryLimit int32!"
    ),
    "apps.DaemonSetUpdateStrategy": "1 type, 2 rollingUpdate RollingUpdateDaemonSet",
    "apps.RollingUpdateDaemonSet": "1 maxUnavailable intstr.IntOrString, 2 maxSurge intstr.IntOrString",
    "apps.DaemonSetStatus": "",
    # k8s.io/api batch/v1/generated.proto
    "batch.Job": "1 metadata meta.ObjectMeta, 2 spec JobSpec, 3 status JobStatus",
    "batch.JobSpec": (
        "1 parallelism int32!, 2 completions int32!, 3 activeDeadlineSeconds int64!, "
        "4 selector meta.LabelSelector, 5 manualSelector bool!, 6 template core.PodTemplateSpec, "
        "7 backoffLimit int32!, 8 ttlSecondsAfterFinished int32!, 9 completionMode!, 10 suspend bool!, "
        "12 backoffLimitPerIndex int32!, 13 maxFailedIndexes int32!, 14 podReplacementPolicy!, 15 managedBy!"
    ),
    "batch.JobStatus": "",
    "batch.CronJob": "1 metadata meta.ObjectMeta, 2 spec CronJobSpec, 3 status CronJobStatus",
    "batch.CronJobSpec": (
        "1 schedule!, 2 startingDeadlineSeconds int64!, 3 concurrencyPolicy, 4 suspend bool!, "
        "5 jobTemplate JobTemplateSpec, 6 successfulJobsHistoryLimit int32!, 7 failedJobsHistoryLimit int32!, "
        "8 timeZone!"
    ),
    "batch.JobTemplateSpec": "1 metadata meta.ObjectMeta, 2 spec JobSpec",
    "batch.CronJobStatus": "",
    # k8s.io/api networking/v1/generated.proto
    "networking.NetworkPolicy": "1 metadata meta.ObjectMeta, 2 spec NetworkPolicySpec",
    "networking.NetworkPolicySpec": (
        "1 podSelector meta.LabelSelector, 2 ingress [NetworkPolicyIngressRule], "
        "3 egress [NetworkPolicyEgressRule], 4 policyTypes [string]"
    ),
    "networking.NetworkPolicyIngressRule": "1 ports [NetworkPolicyPort], 2 from [NetworkPolicyPeer]",
    "networking.NetworkPolicyPort": "1 protocol!, 2 port intstr.IntOrString, 3 endPort int32!",
    "networking.NetworkPolicyPeer": (
        "1 podSelector meta.LabelSelector, 2 namespaceSelector meta.LabelSelector, 3 ipBlock IPBlock"
    ),
    "networking.IPBlock": "1 cidr!, 2 except [string]",
    "networking.NetworkPolicyEgressRule": "1 ports [NetworkPolicyPort], 2 to [NetworkPolicyPeer]",
    # k8s.io/api rbac/v1/generated.proto
    "rbac.Role": "1 metadata meta.ObjectMeta, 2 rules [PolicyRule]",
    "rbac.PolicyRule": (
        "1 verbs [string], 2 apiGroups [string], 3 resources [string], 4 resourceNames [string], "
        "5 nonResourceURLs [string]"
    ),
    "rbac.RoleBinding": "1 metadata meta.ObjectMeta, 2 subjects [Subject], 3 roleRef RoleRef",
    "rbac.Subject": "1 kind!, 2 apiGroup, 3 name!, 4 namespace",
    "rbac.RoleRef": "1 apiGroup!, 2 kind!, 3 name!",
    "rbac.ClusterRole": "1 metadata meta.ObjectMeta, 2 rules [PolicyRule], 3 aggregationRule AggregationRule",
    "rbac.AggregationRule": "1 clusterRoleSelectors [meta.LabelSelector]",
    "rbac.ClusterRoleBinding": "1 metadata meta.ObjectMeta, 2 subjects [Subject], 3 roleRef RoleRef",
    # k8s.io/api discovery/v1/generated.proto
    "discovery.EndpointSlice": (
        "1 metadata meta.ObjectMeta, 2 endpoints [Endpoint], 3 ports [EndpointPort], 4 addressType!"
    ),
    "discovery.Endpoint": (
        "1 addresses [string], 2 conditions EndpointConditions, 3 hostname!, 4 targetRef core.ObjectReference, "
        "5 deprecatedTopology {string}, 6 nodeName!, 7 zone!, 8 hints EndpointHints"
    ),
    "discovery.EndpointConditions": "1 ready bool!, 2 serving bool!, 3 terminating bool!",
    "discovery.EndpointHints": "1 forZones [ForZone], 2 forNodes [ForNode]",
    "discovery.ForZone": "1 name!",
    "discovery.ForNode": "1 name!",
    "discovery.EndpointPort": "1 name!, 2 protocol!, 3 port int32!, 4 appProtocol!",
    # k8s.io/api coordination/v1/generated.proto
    "coordination.Lease": "1 metadata meta.ObjectMeta, 2 spec LeaseSpec",
    "coordination.LeaseSpec": (
        "1 holderIdentity!, 2 leaseDurationSeconds int32!, 3 acquireTime meta.MicroTime, "
        "4 renewTime meta.MicroTime, 5 leaseTransitions int32!, 6 strategy!, 7 preferredHolder!"
    ),
    # k8s.io/api autoscaling/v1/generated.proto
    "autoscaling.Scale": "1 metadata meta.ObjectMeta, 2 spec ScaleSpec, 3 status ScaleStatus",
    "autoscaling.ScaleSpec": "1 replicas int32!",  # not a pointer, but 0 is a request: kept (see above)
    "autoscaling.ScaleStatus": "1 replicas int32!, 2 selector",
    # k8s.io/api authorization/v1/generated.proto (`kubectl auth can-i`; field and label selectors skipped)
    "authorization.SelfSubjectAccessReview": (
        "1 metadata meta.ObjectMeta, 2 spec SelfSubjectAccessReviewSpec, 3 status SubjectAccessReviewStatus"
    ),
    "authorization.SelfSubjectAccessReviewSpec": (
        "1 resourceAttributes ResourceAttributes, 2 nonResourceAttributes NonResourceAttributes"
    ),
    "authorization.ResourceAttributes": "1 namespace, 2 verb, 3 group, 4 version, 5 resource, 6 subresource, 7 name",
    "authorization.NonResourceAttributes": "1 path, 2 verb",
    "authorization.SubjectAccessReviewStatus": "1 allowed bool!, 2 reason, 3 evaluationError, 4 denied bool",
    "authorization.SelfSubjectRulesReview": (
        "1 metadata meta.ObjectMeta, 2 spec SelfSubjectRulesReviewSpec, 3 status SubjectRulesReviewStatus"
    ),
    "authorization.SelfSubjectRulesReviewSpec": "1 namespace",
    "authorization.SubjectRulesReviewStatus": (
        "1 resourceRules [ResourceRule], 2 nonResourceRules [NonResourceRule], 3 incomplete bool!, 4 evaluationError"
    ),
    "authorization.ResourceRule": (
        "1 verbs [string], 2 apiGroups [string], 3 resources [string], 4 resourceNames [string]"
    ),
    "authorization.NonResourceRule": "1 verbs [string], 2 nonResourceURLs [string]",
}

# (apiVersion, kind) -> message: the kinds a body may carry.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "core.Namespace",
    ("v1", "Pod"): "core.Pod",
    ("v1", "Service"): "core.Service",
    ("v1", "ConfigMap"): "core.ConfigMap",
    ("v1", "Secret"): "core.Secret",
    ("v1", "ServiceAccount"): "core.ServiceAccount",
    ("v1", "ReplicationController"): "core.ReplicationController",
    ("v1", "Endpoints"): "core.Endpoints",
    ("v1", "ResourceQuota"): "core.ResourceQuota",
    ("v1", "LimitRange"): "core.LimitRange",
    ("apps/v1", "Deployment"): "apps.Deployment",
    ("apps/v1", "ReplicaSet"): "apps.ReplicaSet",
    ("apps/v1", "DaemonSet"): "apps.DaemonSet",
    ("batch/v1", "Job"): "batch.Job",
    ("batch/v1", "CronJob"): "batch.CronJob",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networking.NetworkPolicy",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac.Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac.ClusterRoleBinding",
    ("discovery.k8s.io/v1", "EndpointSlice"): "discovery.EndpointSlice",
    ("coordination.k8s.io/v1", "Lease"): "coordination.Lease",
    ("autoscaling/v1", "Scale"): "autoscaling.Scale",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "authorization.SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "authorization.SelfSubjectRulesReview",
}

_ITEM = re.compile(r"(\d+) (\.\.\.|\w+)(?: (\[[\w.]+\]|\{[\w.]+\}|[\w.]+))?(!?)")


def _parse(message: str, spec: str) -> dict[int, Field]:
    package = message.split(".")[0]
    fields: dict[int, Field] = {}
    for item in filter(None, spec.split(", ")):
        found = _ITEM.fullmatch(item)
        if found is None:
            raise ValueError(f"{message}: bad schema item {item!r}")
        number, name, type_, keep = found.groups()
        type_ = type_ or "string"
        shape = {"[": "list", "{": "map"}.get(type_[0], "one")
        type_ = type_.strip("[]{}")
        if type_ not in SCALARS and "." not in type_:
            type_ = f"{package}.{type_}"
        fields[int(number)] = Field("" if name == "..." else name, type_, shape, keep == "!")
    return fields


MESSAGES: dict[str, dict[int, Field]] = {name: _parse(name, spec) for name, spec in _SCHEMA.items()}


# --- the wire ------------------------------------------------------------------------------------------------


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``data[pos]`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("protobuf: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ValueError("protobuf: varint longer than 10 bytes")


def read_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Each (field number, wire type, value) of one message: an int for varints and fixed-width values,
    the bytes of a length-delimited one."""
    pos = 0
    while pos < len(data):
        tag, pos = read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("protobuf: field number 0")
        value: int | bytes
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if pos + size > len(data):
                raise ValueError("protobuf: truncated fixed-width field")
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        elif wire == LENGTH_DELIMITED:
            size, pos = read_varint(data, pos)
            if pos + size > len(data):
                raise ValueError(f"protobuf: field {number} runs past the end of its message")
            value, pos = data[pos:pos + size], pos + size
        else:  # 3 and 4, groups: never written by Kubernetes
            raise ValueError(f"protobuf: unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _signed(value: int, bits: int) -> int:
    """Two's complement of the low ``bits`` bits: Go's int32(x) / int64(x) of the varint."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --- values --------------------------------------------------------------------------------------------------


def _time(data: bytes, micro: bool) -> str | None:
    if not data:
        return None  # the zero time: no field (see the module docstring)
    found = {n: v for n, _, v in read_fields(data) if isinstance(v, int)}
    seconds = _signed(found.get(1, 0), 64)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if not micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    micros = _signed(found.get(2, 0), 32) // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def _int_or_string(data: bytes) -> int | str:
    found = {n: v for n, _, v in read_fields(data)}
    if found.get(1, 0) == 1:
        raw = found.get(3, b"")
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    value = found.get(2, 0)
    return _signed(value, 32) if isinstance(value, int) else 0


def _quantity(data: bytes) -> str:
    raw = next((v for n, _, v in read_fields(data) if n == 1 and isinstance(v, bytes)), b"")
    return raw.decode("utf-8", "replace") or "0"


# Messages with their own JSON form.
_SPECIAL: dict[str, Callable[[bytes], Any]] = {
    "meta.Time": lambda data: _time(data, micro=False),
    "meta.MicroTime": lambda data: _time(data, micro=True),
    "intstr.IntOrString": _int_or_string,
    "resource.Quantity": _quantity,
}

_ZERO: dict[str, object] = {"string": "", "bytes": "", "bool": False, "int32": 0, "int64": 0}


def _scalar(type_: str, value: int | bytes, where: str) -> Any:
    if type_ in ("string", "bytes"):
        if not isinstance(value, bytes):
            raise ValueError(f"protobuf: {where} should be length-delimited")
        # Go's JSON writes invalid UTF-8 as U+FFFD, and []byte as standard base64
        return value.decode("utf-8", "replace") if type_ == "string" else base64.b64encode(value).decode()
    if not isinstance(value, int):
        raise ValueError(f"protobuf: {where} should be a varint")
    if type_ == "bool":
        return value != 0
    return _signed(value, 32 if type_ == "int32" else 64)


def _value(type_: str, value: int | bytes, where: str) -> Any:
    if type_ in SCALARS:
        return _scalar(type_, value, where)
    if not isinstance(value, bytes):
        raise ValueError(f"protobuf: {where} should be a message")
    return decode_message(type_, value)


def _map_entry(field: Field, data: bytes, where: str) -> tuple[str, Any]:
    key: Any = ""
    value: Any = _ZERO[field.type] if field.type in SCALARS else decode_message(field.type, b"")
    for number, _, raw in read_fields(data):
        if number == 1:
            key = _scalar("string", raw, f"{where} key")
        elif number == 2:
            value = _value(field.type, raw, where)
    return key, value


def _packed(type_: str, data: bytes, where: str) -> list[Any]:
    values, pos = [], 0
    while pos < len(data):
        raw, pos = read_varint(data, pos)
        values.append(_scalar(type_, raw, where))
    return values


def decode_message(message: str, data: bytes) -> Any:
    """The JSON form of ``data``, a ``message`` (a name in ``MESSAGES`` or a special one)."""
    special = _SPECIAL.get(message)
    if special is not None:
        return special(data)
    fields = MESSAGES[message]
    out: dict[str, Any] = {}
    for number, _, raw in read_fields(data):
        field = fields.get(number)
        if field is None:
            continue
        where = f"{message}.{field.name or field.type}"
        if field.shape == "map":
            if not isinstance(raw, bytes):
                raise ValueError(f"protobuf: {where} should be a map entry")
            key, value = _map_entry(field, raw, where)
            out.setdefault(field.name, {})[key] = value
        elif field.shape == "list":
            if field.type in ("bool", "int32", "int64") and isinstance(raw, bytes):  # packed
                out.setdefault(field.name, []).extend(_packed(field.type, raw, where))
            else:
                out.setdefault(field.name, []).append(_value(field.type, raw, where))
        elif not field.name:
            out.update(_value(field.type, raw, where))  # an inlined message's fields join ours
        else:
            value = _value(field.type, raw, where)
            if value is None or (field.type in SCALARS and not field.keep_zero and value == _ZERO[field.type]):
                out.pop(field.name, None)  # the last occurrence wins, as in protobuf
                continue
            out[field.name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The object in a ``application/vnd.kubernetes.protobuf`` request body, as its JSON dict with
    ``apiVersion`` and ``kind``. ValueError (one line) for a body that is not one, UnsupportedKind for a
    kind not in ``KINDS``."""
    if not body.startswith(MAGIC):
        raise ValueError("the body is not Kubernetes protobuf: it does not start with k8s\\x00")
    api_version = kind = encoding = ""
    raw = b""
    for number, _, value in read_fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for inner, _, text in read_fields(value):
                if inner == 1:
                    api_version = _scalar("string", text, "Unknown.typeMeta.apiVersion")
                elif inner == 2:
                    kind = _scalar("string", text, "Unknown.typeMeta.kind")
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number == 3 and isinstance(value, bytes):
            encoding = value.decode("utf-8", "replace")
    if encoding:
        raise ValueError(f"protobuf: content encoding {encoding!r} is not supported")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise UnsupportedKind(f"protobuf bodies of {kind or '(no kind)'} ({api_version or 'no apiVersion'}) "
                              "are not supported; send JSON")  # fmt: skip
    return {"apiVersion": api_version, "kind": kind, **decode_message(message, raw)}
