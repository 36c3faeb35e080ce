import Foundation
FileHandle.standardError.write("meter-sim: not built yet\n".data(using: .utf8)!)
exit(1)
