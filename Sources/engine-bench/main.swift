import Foundation
FileHandle.standardError.write("engine-bench: not built yet\n".data(using: .utf8)!)
exit(1)
