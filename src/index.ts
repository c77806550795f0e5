/**
 * nfsieve: the public API. Everything here works from `require('nfsieve')`
 * and `import ... from 'nfsieve'`.
 */
export { decodeFrame, decodeFrames, packetJson, recordToPacket } from './decode/packet';
export type { DecodedPacket, IkeHeader, Fragment, NattKind, NfAh } from './decode/packet';
export { referenceDecode } from './decode/reference';
export { formatAddress, parseAddress } from './decode/address';
export { NfsieveError, errorCode } from './errors';
export type { ErrorCode, ErrorPlace } from './errors';
export { readCapture, parseCapture, writePcap, CaptureError } from './capture/pcap';
export type { Frame, ParseOptions } from './capture/pcap';
export { loadPolicyFile, parsePolicyText, PolicyError, formatDiagnostic } from './policy/parse';
export type { Diagnostic } from './policy/parse';
export { definePolicy } from './policy/define';
export type { PolicyInput, RuleInput, ConditionsInput, ActionInput, SetInput, LimitInput, One, Port } from './policy/define';
export type { Policy, Rule, Conditions, Action, NamedSet, Verdict, CtState, Cond, SetCond, Range, Prefix, AddressItem, AddressRange, TruncatedKind, SetKind, Limit } from './policy/model';
export { policyToYaml } from './policy/serialize';
export { compile } from './compile/compile';
export type { CompiledPolicy, Warning, WarningKind } from './compile/compile';
export { Classifier, LINKTYPE_RAW } from './classifier';
export type { ClassifyResult, PacketMeta, CounterRow } from './classifier';
export type { IndexOptions, LookupInfo, NativeClassifier, NativeQueueStats, NativeMeta, NativeSetElement, NativeSetMember } from './native';
export { referenceEvaluate } from './reference/evaluate';
export type { Decision, VerdictName, Meta, SetContents, LimitState } from './reference/evaluate';
export { importIptables, importIptablesFile, loadIpset } from './iptables/import';
export type { ImportOptions } from './iptables/import';
export type { Backend } from './iptables/rule';
export { loadClassbenchRules, parseClassbenchRules, loadTrace } from './classbench/classbench';
export type { Trace } from './classbench/classbench';
export { generateTrace, synthesizeRules, synthesizeClassbenchText } from './classbench/generate';
export { attach, parseQueueRange } from './queue';
export type { Attachment, AttachmentEvents, AttachOptions, AttachStats, QueueStats, QueueCounters, RuleCounter } from './queue';
export { SetError } from './sets';
export type { SetOperations, SetMember, SetSizes, Origin, OriginSelector, AddOptions, DeleteOptions, SetErrorCode } from './sets';
export { startVici, DEFAULT_VICI_SOCKET } from './ike/vici';
export type { ViciLearner, ViciOptions, LearnTarget } from './ike/vici';
export { renderMetrics, serveMetrics, attachmentSnapshot } from './metrics';
export type { MetricsSnapshot, MetricsServer, QueueMetrics, Count } from './metrics';
