/// A checkpoint file that cannot be read: always names the file and the problem.
public struct CheckpointError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What is wrong with a checkpoint file.
    public enum Problem: Equatable, Sendable {
        /// The file cannot be opened, mapped or listed (missing, not a regular file, permission).
        case io(String)
        /// The file ends before a structure it announces (header, record, tensor data).
        case truncated(String)
        /// The header (safetensors JSON, index JSON) is malformed or has fields of the wrong type.
        case corruptHeader(String)
        /// A length or count is beyond any sane checkpoint (header over 100 MB, element counts overflowing).
        case absurdSize(String)
        /// A tensor's bytes lie outside the data they must be in.
        case offsetOutOfRange(String)
        /// Two tensors of a safetensors file share bytes.
        case overlappingTensors(String, String)
        /// A tensor name (or ZIP entry name) occurs twice.
        case duplicateName(String)
        /// A dtype the readers do not know, or a conversion that is not allowed.
        case unsupportedDType(String)
        /// shape × dtype size differs from the tensor's byte length, or a shape is invalid.
        case shapeMismatch(String)
        /// A pickle names a global outside the state-dict allow-list (nothing was executed).
        case forbiddenGlobal(String)
        /// A pickle uses an opcode the restricted unpickler does not implement.
        case unsupportedOpcode(String)
        /// A pickle is malformed or describes something that is not a state dict of tensors.
        case corruptPickle(String)
        /// A ZIP archive is malformed.
        case corruptZip(String)
        /// A ZIP entry that must exist does not.
        case missingZipEntry(String)
        /// A ZIP entry is compressed (torch.save stores entries uncompressed) or encrypted.
        case compressedEntry(String)
        /// The file is not a checkpoint format these readers understand.
        case unknownFormat(String)
        /// A tensor name that the checkpoint does not hold.
        case noSuchTensor(String)
        /// A value cannot be converted to the requested dtype (e.g. an i64 that does not fit i32).
        case conversion(String)
    }

    /// The file (or index / directory) the problem is in.
    public var file: String
    /// The problem.
    public var problem: Problem

    public init(_ file: String, _ problem: Problem) {
        self.file = file
        self.problem = problem
    }

    public var description: String {
        let what: String
        switch problem {
        case let .io(s): what = "cannot read: \(s)"
        case let .truncated(s): what = "truncated: \(s)"
        case let .corruptHeader(s): what = "corrupt header: \(s)"
        case let .absurdSize(s): what = "absurd size: \(s)"
        case let .offsetOutOfRange(s): what = "offset out of range: \(s)"
        case let .overlappingTensors(a, b): what = "tensors '\(a)' and '\(b)' overlap"
        case let .duplicateName(s): what = "duplicate name '\(s)'"
        case let .unsupportedDType(s): what = "unsupported dtype: \(s)"
        case let .shapeMismatch(s): what = "shape mismatch: \(s)"
        case let .forbiddenGlobal(s): what = "forbidden global '\(s)' in pickle (refused, nothing executed)"
        case let .unsupportedOpcode(s): what = "unsupported pickle opcode: \(s)"
        case let .corruptPickle(s): what = "corrupt pickle: \(s)"
        case let .corruptZip(s): what = "corrupt zip: \(s)"
        case let .missingZipEntry(s): what = "missing zip entry '\(s)'"
        case let .compressedEntry(s): what = "compressed entries not supported: \(s)"
        case let .unknownFormat(s): what = "unknown format: \(s)"
        case let .noSuchTensor(s): what = "no tensor named '\(s)'"
        case let .conversion(s): what = "conversion failed: \(s)"
        }
        return "\(file): \(what)"
    }
}
