import Foundation

/// What one KPM33B measures, drifting like a real three-phase load: voltages
/// near 230 V, slowly wandering currents, power factor near 0.99, powers that
/// follow from those, and energy counters that only ever rise.
struct ElectricalState {
    var voltage: [Double]        // phase voltages A, B, C (V)
    var current: [Double]        // phase currents (A)
    var powerFactor: [Double]
    var frequency = 50.0
    var baseLoad: [Double]       // the level each phase current wanders around (A)
    /// -1: capacitive (reactive power negative, as in the captured meter), +1: inductive.
    let reactiveSign: Double
    var angleJitter: [Double] = [0, 0, 0]
    var demand: [Double] = []    // pdm, qdm, sdm, iadm, ibdm, icdm

    // Energy counters (kWh, kvarh, kVAh).
    var importActive: Double
    var importReactive = 0.0
    var exportReactive = 0.0
    var apparent: Double
    var tariff: [Double]         // import active per tariff 1...4 (sums to importActive)

    init(rng: inout SplitMix64) {
        voltage = (0..<3).map { _ in 230 + rng.gaussian(1.5) }
        baseLoad = (0..<3).map { _ in 2 + rng.unit() * 12 }
        current = baseLoad
        powerFactor = (0..<3).map { _ in 0.985 + rng.unit() * 0.012 }
        reactiveSign = rng.chance(0.7) ? -1 : 1
        let start = 10 + rng.unit() * 490
        let shares = [0.05, 0.16, 0.37, 0.42]
        tariff = shares.map { (start * $0 * 1000).rounded() / 1000 }
        importActive = tariff.reduce(0, +)
        apparent = importActive * 1.005
        demand = []
    }

    // MARK: Derived values

    func activePower(_ phase: Int) -> Double { voltage[phase] * current[phase] * powerFactor[phase] / 1000 }
    func apparentPower(_ phase: Int) -> Double { voltage[phase] * current[phase] / 1000 }
    func reactivePower(_ phase: Int) -> Double {
        let s = apparentPower(phase), p = activePower(phase)
        return reactiveSign * (max(0, s * s - p * p)).squareRoot()
    }
    var totalActive: Double { (0..<3).map(activePower).reduce(0, +) }
    var totalReactive: Double { (0..<3).map(reactivePower).reduce(0, +) }
    var totalApparent: Double { (0..<3).map(apparentPower).reduce(0, +) }

    /// Line voltage between two phases 120° apart.
    func lineVoltage(_ a: Int, _ b: Int) -> Double {
        (voltage[a] * voltage[a] + voltage[b] * voltage[b] + voltage[a] * voltage[b]).squareRoot()
    }

    /// Largest deviation from the mean, in percent of the mean.
    static func unbalance(_ values: [Double]) -> Double {
        let mean = values.reduce(0, +) / Double(values.count)
        guard mean > 0 else { return 0 }
        return values.map { abs($0 - mean) }.max()! / mean * 100
    }

    // MARK: Evolution

    /// One drift step; `daySecond` shapes the load over the day.
    mutating func drift(daySecond: Int64, rng: inout SplitMix64) {
        let hour = Double(daySecond) / 3600
        // More load in the morning and evening.
        let profile = 0.7 + 0.3 * sin((hour - 6) / 24 * 2 * .pi) + 0.2 * max(0, sin((hour - 16) / 6 * .pi))
        for p in 0..<3 {
            voltage[p] += (230 - voltage[p]) * 0.2 + rng.gaussian(0.6)
            voltage[p] = min(245, max(215, voltage[p]))
            let target = baseLoad[p] * profile
            current[p] += (target - current[p]) * 0.15 + rng.gaussian(0.25)
            current[p] = max(0.05, current[p])
            powerFactor[p] += (0.99 - powerFactor[p]) * 0.2 + rng.gaussian(0.002)
            powerFactor[p] = min(1, max(0.9, powerFactor[p]))
            angleJitter[p] = rng.gaussian(0.15)
        }
        frequency += (50 - frequency) * 0.3 + rng.gaussian(0.015)
        let now = [totalActive, totalReactive, totalApparent] + current
        demand = demand.isEmpty ? now : zip(demand, now).map { $0 + ($1 - $0) * 0.2 }
    }

    /// Integrates energy over `hours` at the present powers.
    mutating func integrate(hours: Double, daySecond: Int64) {
        guard hours > 0 else { return }
        let p = totalActive * hours, q = totalReactive * hours, s = totalApparent * hours
        importActive += p
        tariff[Self.tariff(daySecond: daySecond)] += p
        if q >= 0 { importReactive += q } else { exportReactive -= q }
        apparent += s
    }

    /// Tariff 1 (sharp), 2 (peak), 3 (flat) or 4 (valley) by time of day, as index 0...3.
    static func tariff(daySecond: Int64) -> Int {
        switch daySecond / 3600 {
        case 19, 20: return 0
        case 8, 9, 10, 17, 18: return 1
        case 11...16, 21, 22: return 2
        default: return 3
        }
    }
}
