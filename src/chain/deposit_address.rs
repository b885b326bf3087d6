//! Deposit addresses computed off-chain, exactly as `DepositFactory.addressOf` does: the CREATE2
//! address of an EIP-1167 clone of the factory's forwarder implementation. No key is involved.

use alloy::primitives::{Address, B256, keccak256};

/// EIP-1167 minimal proxy creation code, before and after the implementation address.
const CLONE_PREFIX: [u8; 20] = alloy::hex!("3d602d80600a3d3981f3363d3d373d3d3d363d73");
const CLONE_SUFFIX: [u8; 15] = alloy::hex!("5af43d82803e903d91602b57fd5bf3");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepositAddresses {
    factory: Address,
    clone_code_hash: B256,
}

impl DepositAddresses {
    /// The factory deploys its forwarder implementation in its constructor, with CREATE at the
    /// factory's first nonce (1, as for every contract account), so its address is known too.
    pub fn new(factory: Address) -> Self {
        let implementation = factory.create(1);
        let mut code = Vec::with_capacity(55);
        code.extend_from_slice(&CLONE_PREFIX);
        code.extend_from_slice(implementation.as_slice());
        code.extend_from_slice(&CLONE_SUFFIX);
        Self { factory, clone_code_hash: keccak256(&code) }
    }

    pub fn factory(&self) -> Address {
        self.factory
    }

    pub fn address_of(&self, salt: B256) -> Address {
        self.factory.create2(salt, self.clone_code_hash)
    }
}

/// Each order's salt: the hash of its id, so the address can always be recomputed from the order.
pub fn salt_for_order(order_id: &str) -> B256 {
    keccak256(order_id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_salts_give_different_addresses_under_one_factory() {
        let d = DepositAddresses::new(Address::repeat_byte(0x11));
        let a = d.address_of(salt_for_order("order-a"));
        let b = d.address_of(salt_for_order("order-b"));
        assert_ne!(a, b);
        assert_eq!(a, d.address_of(salt_for_order("order-a")));
    }
}
