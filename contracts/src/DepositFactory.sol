// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {DepositForwarder} from "./DepositForwarder.sol";

/// One deposit address per order: the CREATE2 address of an EIP-1167 clone of
/// `implementation` for the order's salt. The address is computable off-chain
/// (so the watcher holds no keys) and receives tokens before any code is there.
/// `sweep` deploys the clones that are missing and moves their balances to the
/// fixed `treasury`; funds can go nowhere else, so sweeping is open to anyone.
contract DepositFactory {
    address public immutable treasury;
    address public immutable implementation;
    bytes32 public immutable cloneCodeHash;

    constructor(address treasury_) {
        require(treasury_ != address(0), "treasury is zero");
        treasury = treasury_;
        address impl = address(new DepositForwarder());
        implementation = impl;
        cloneCodeHash = keccak256(_cloneCode(impl));
    }

    /// The deposit address of `salt`, deployed or not.
    function addressOf(bytes32 salt) public view returns (address forwarder) {
        bytes32 codeHash = cloneCodeHash;
        // keccak256(0xff ++ factory ++ salt ++ codeHash), in scratch memory: a sweep computes
        // this once per deposit, and allocating would grow memory with every iteration.
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0xff)
            mstore(add(ptr, 0x01), shl(96, address()))
            mstore(add(ptr, 0x15), salt)
            mstore(add(ptr, 0x35), codeHash)
            forwarder := and(keccak256(ptr, 0x55), 0xffffffffffffffffffffffffffffffffffffffff)
        }
    }

    /// Deploys the forwarder of `salt` unless it is already there; returns its address.
    function deployForwarder(bytes32 salt) public returns (address forwarder) {
        forwarder = addressOf(salt);
        if (forwarder.code.length == 0) {
            address impl = implementation;
            address created;
            // The EIP-1167 creation code around `impl`, in scratch memory (see addressOf).
            assembly ("memory-safe") {
                let ptr := mload(0x40)
                mstore(ptr, 0x3d602d80600a3d3981f3363d3d373d3d3d363d73000000000000000000000000)
                mstore(add(ptr, 0x14), shl(0x60, impl))
                mstore(add(ptr, 0x28), 0x5af43d82803e903d91602b57fd5bf30000000000000000000000000000000000)
                created := create2(0, ptr, 0x37, salt)
            }
            require(created == forwarder, "create2 failed");
        }
    }

    /// A deposit address whose sweep reverted inside a batch (a blacklisted address, a paused
    /// token); the rest of the batch went on.
    event SweepFailed(bytes32 indexed salt, address indexed forwarder);

    /// Sweeps `token` from the deposit addresses of `salts` to the treasury, each address in
    /// its own call frame: one whose transfer reverts is reported by `SweepFailed` and does not
    /// stop the others. The token's own Transfer events record each move; successes emit no
    /// event of ours (it would cost ~1,800 gas per deposit). Returns how many failed.
    function sweep(address token, bytes32[] calldata salts) external returns (uint256 failed) {
        address to = treasury;
        for (uint256 i; i < salts.length; ++i) {
            address forwarder = deployForwarder(salts[i]);
            try DepositForwarder(forwarder).sweep(token, to) returns (uint256) {}
            catch {
                emit SweepFailed(salts[i], forwarder);
                ++failed;
            }
        }
    }

    function _cloneCode(address impl) private pure returns (bytes memory) {
        return abi.encodePacked(
            hex"3d602d80600a3d3981f3363d3d373d3d3d363d73", impl, hex"5af43d82803e903d91602b57fd5bf3"
        );
    }
}
